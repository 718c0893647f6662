import { and, desc, eq, gte, isNull, lt, type SQL } from "drizzle-orm";
import { createRouter } from "../../lib/create-app";
import { auditLogs } from "../../db/schema";
import { decodeCursor, page } from "../../lib/cursor";
import { verifyChain } from "../../services/audit";
import * as routes from "./audit.routes";

const parse = (v: string | null) => (v === null ? null : JSON.parse(v));

export const auditRouter = createRouter()
	.openapi(routes.listAuditLogs, async (c) => {
		const orgId = c.get("access").organization.id;
		const q = c.req.valid("query");
		const before = decodeCursor(q.cursor);
		const actor: SQL | undefined =
			q.actor === undefined ? undefined : q.actor === "system" ? isNull(auditLogs.actorId) : eq(auditLogs.actorId, q.actor);
		const rows = await c
			.get("db")
			.select()
			.from(auditLogs)
			.where(
				and(
					eq(auditLogs.organizationId, orgId),
					actor,
					q.action ? eq(auditLogs.action, q.action) : undefined,
					q.from !== undefined ? gte(auditLogs.occurredAt, q.from) : undefined,
					q.to !== undefined ? lt(auditLogs.occurredAt, q.to) : undefined,
					before ? lt(auditLogs.seq, before.k) : undefined,
				),
			)
			.orderBy(desc(auditLogs.seq))
			.limit(q.limit + 1);
		const p = page(rows, q.limit, (r) => ({ k: r.seq, id: r.id }));
		return c.json(
			{
				data: p.data.map((r) => ({
					id: r.id,
					seq: r.seq,
					actor: { type: r.actorType, id: r.actorId },
					action: r.action,
					target: { type: r.targetType, id: r.targetId },
					before: parse(r.before),
					after: parse(r.after),
					context: { ip: r.ip, country: r.country, userAgent: r.userAgent, requestId: r.requestId },
					occurredAt: r.occurredAt,
					prevHash: r.prevHash,
					hash: r.hash,
				})),
				nextCursor: p.nextCursor,
			},
			200,
		);
	})
	.openapi(routes.verifyAuditLogs, async (c) => c.json(await verifyChain(c.get("db"), c.get("access").organization.id), 200));
