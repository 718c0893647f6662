import type { Database } from "../../db/client";
import { errorFields, type Logger } from "../../lib/logger";
import { recordDeadLetter } from "../../services/events-log";
import { backoffSeconds } from "../backoff";
import { eventLogger, parseMessage, planMessage } from "./planners";

/**
 * Dead-letter consumer: the message exhausted its retries. Keep it (payload included) as a failed
 * event so an operator can see it and replay it (POST /api/admin/events/:svixId/replay).
 */
export async function recordDeadLetters(db: Database, batch: MessageBatch<unknown>, logger: Logger): Promise<void> {
	const now = Date.now();
	for (const msg of batch.messages) {
		const body = parseMessage(msg, logger);
		if (!body) {
			msg.ack();
			continue;
		}
		// The plan only tells which organization and entity the event is about.
		let found: { organizationId: string | null; entityId: string | null } = { organizationId: null, entityId: null };
		try {
			found = (await planMessage(db, msg, body, now)).plan;
		} catch {
			// unreadable payload: still recorded below
		}
		try {
			await recordDeadLetter(db, body, found, msg.attempts);
			eventLogger(logger, body).error("webhook event dead-lettered", { type: body.type });
			msg.ack();
		} catch (err) {
			eventLogger(logger, body).error("could not record dead letter", errorFields(err));
			msg.retry({ delaySeconds: backoffSeconds(msg.attempts) });
		}
	}
}
