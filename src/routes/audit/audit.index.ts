import { createRouter } from "../../lib/create-app";
import { listAuditLogs, verifyChain } from "../../services/audit";
import * as routes from "./audit.routes";

const parse = (v: string | null) => (v === null ? null : JSON.parse(v));

export const auditRouter = createRouter()
	.openapi(routes.listAuditLogs, async (c) => {
		const orgId = c.get("access").organization.id;
		const q = c.req.valid("query");
		const p = await listAuditLogs(c.get("db"), orgId, q);
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
	.openapi(routes.verifyAuditLogs, async (c) => {
		const { cursor, full } = c.req.valid("query");
		const orgId = c.get("access").organization.id;
		return c.json(await verifyChain(c.get("db"), orgId, { cursor, full: full === "1" || full === "true" }), 200);
	});
