-- Demo tenant for local development (idempotent). Real data arrives through Clerk webhooks.
INSERT OR IGNORE INTO organizations (id, name, slug, plan, source_updated_at, created_at, updated_at)
VALUES ('org_demo', 'Demo Inc', 'demo', 'free', 1, 1700000000000, 1700000000000);
INSERT OR IGNORE INTO users (id, email, first_name, last_name, source_updated_at, created_at, updated_at)
VALUES ('user_demo_admin', 'admin@demo.test', 'Ada', 'Admin', 1, 1700000000000, 1700000000000),
       ('user_demo_member', 'member@demo.test', 'Max', 'Member', 1, 1700000000000, 1700000000000);
INSERT OR IGNORE INTO memberships (id, organization_id, user_id, role, source_updated_at, created_at, updated_at,
    user_email, user_first_name, user_last_name)
VALUES ('orgmem_demo_admin', 'org_demo', 'user_demo_admin', 'org:admin', 1, 1700000000000, 1700000000000, 'admin@demo.test', 'Ada', 'Admin'),
       ('orgmem_demo_member', 'org_demo', 'user_demo_member', 'org:member', 1, 1700000000001, 1700000000001, 'member@demo.test', 'Max', 'Member');
