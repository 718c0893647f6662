import { createRouter } from "../../lib/create-app";
import { listAuditLogs, verifyChain } from "../../services/audit";
import { auditEntryView } from "../../services/views";
import * as routes from "./audit.routes";

export const auditRouter = createRouter()
	.openapi(routes.listAuditLogs, async (c) => {
		const orgId = c.get("access").organization.id;
		const q = c.req.valid("query");
		const p = await listAuditLogs(c.get("db"), orgId, q);
		return c.json(
			{
				data: p.data.map(auditEntryView),
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
