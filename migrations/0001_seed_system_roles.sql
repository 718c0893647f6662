-- System roles and permissions. Clerk's system roles org:admin and org:member (legacy keys admin and
-- basic_member are mapped in code) and the permission catalogue the routes check. Custom roles and
-- permissions arrive later through role.* and permission.* webhooks.
INSERT INTO roles (id, organization_id, key, name, description, is_system, source_updated_at, created_at, updated_at) VALUES
  ('role_system_admin', NULL, 'org:admin', 'Admin', 'Full access to the organization', 1, 0, 0, 0),
  ('role_system_member', NULL, 'org:member', 'Member', 'Read access to the organization', 1, 0, 0, 0);
--> statement-breakpoint
INSERT INTO permissions (id, key, name, is_system, source_updated_at, created_at, updated_at) VALUES
  ('perm_sys_profile_manage', 'org:sys_profile:manage', 'sys profile manage', 1, 0, 0, 0),
  ('perm_sys_profile_delete', 'org:sys_profile:delete', 'sys profile delete', 1, 0, 0, 0),
  ('perm_sys_memberships_read', 'org:sys_memberships:read', 'sys memberships read', 1, 0, 0, 0),
  ('perm_sys_memberships_manage', 'org:sys_memberships:manage', 'sys memberships manage', 1, 0, 0, 0),
  ('perm_sys_domains_read', 'org:sys_domains:read', 'sys domains read', 1, 0, 0, 0),
  ('perm_sys_domains_manage', 'org:sys_domains:manage', 'sys domains manage', 1, 0, 0, 0),
  ('perm_members_read', 'org:members:read', 'members read', 0, 0, 0, 0),
  ('perm_members_manage', 'org:members:manage', 'members manage', 0, 0, 0, 0),
  ('perm_events_read', 'org:events:read', 'events read', 0, 0, 0, 0),
  ('perm_billing_read', 'org:billing:read', 'billing read', 0, 0, 0, 0),
  ('perm_billing_manage', 'org:billing:manage', 'billing manage', 0, 0, 0, 0),
  ('perm_products_read', 'org:products:read', 'products read', 0, 0, 0, 0),
  ('perm_products_write', 'org:products:write', 'products write', 0, 0, 0, 0),
  ('perm_orders_read', 'org:orders:read', 'orders read', 0, 0, 0, 0),
  ('perm_orders_write', 'org:orders:write', 'orders write', 0, 0, 0, 0),
  ('perm_audit_read', 'org:audit:read', 'audit read', 0, 0, 0, 0),
  ('perm_usage_read', 'org:usage:read', 'usage read', 0, 0, 0, 0),
  ('perm_webhooks_manage', 'org:webhooks:manage', 'webhooks manage', 0, 0, 0, 0);
--> statement-breakpoint
INSERT INTO role_permissions (role_id, permission_id) SELECT 'role_system_admin', id FROM permissions;
--> statement-breakpoint
INSERT INTO role_permissions (role_id, permission_id) SELECT 'role_system_member', id FROM permissions WHERE key IN ('org:billing:read', 'org:members:read', 'org:orders:read', 'org:products:read', 'org:sys_memberships:read', 'org:usage:read');
