/**
 * The resource protocol, version 1 (docs/resource-protocol.md): the messages reaper and a
 * `command` or `http` handler exchange, as zod schemas. The JSON Schemas in docs/schemas/
 * are generated from these (scripts/write-protocol-schemas.mjs; a unit test keeps them
 * equal), and every line a handler sends is checked against them: handler output is
 * hostile input (docs/safety.md §3 holds only if a `deleted` means what it says).
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

const id = z.string().min(1).max(4096).meta({ description: 'The resource\'s id, byte-exact, unique in the type\'s scope.' });
const fingerprint = z
  .string()
  .max(1024)
  .meta({ description: 'What identifies this version of the resource (a version, an ETag, a hash of its content); a delete is conditional on it.' });
const message = z.string().max(4096);

/** Request of `list`: one JSON object (a command's stdin, an http body). */
export const listRequest = z
  .strictObject({
    protocol: z.literal(PROTOCOL_VERSION),
    op: z.literal('list'),
    resource: z.string().meta({ description: 'The resource type\'s name in the manifest.' }),
    limit: z.number().int().positive().meta({ description: 'Records wanted per page (a hint; a handler may send fewer or more).' }),
    cursor: z.string().nullable().meta({ description: 'The `next` of the previous page; null for the first page.' }),
    ids: z
      .array(id)
      .optional()
      .meta({ description: 'Read only these ids (re-verification). A handler may ignore it and list as usual; reaper keeps only the ids it asked for.' }),
  })
  .meta({ title: 'list request', description: 'Sent once per page of a scan, and to read given ids again.' });

/** A record line of a `list` answer. */
export const listRecord = z
  .strictObject({
    id,
    fingerprint,
    createdAt: z.iso
      .datetime({ offset: true })
      .nullable()
      .meta({ description: 'Creation time (ISO 8601 with a zone); null when unknown (the resource is then judged unknown, never reaped).' }),
    bytes: z.number().int().nonnegative().nullable().optional().meta({ description: 'Size in bytes, for reports; null or absent when unknown.' }),
    attributes: z
      .record(z.string().max(256), z.string().max(4096))
      .optional()
      .meta({ description: 'Strings that owner rules (`owner: { attribute: NAME }`) and protect rules (`protect: [{ attribute: {NAME: VALUE} }]`) read.' }),
    unreadable: message.optional().meta({ description: 'The handler could not read this resource\'s attributes: it is judged unknown, never reaped.' }),
  })
  .meta({ title: 'list record' });

/** The last line of a `list` answer: without it the answer is incomplete (a handler that died mid-page). */
export const listEnd = z
  .strictObject({
    next: z.string().min(1).nullable().meta({ description: 'Cursor of the next page, passed back in the next request; null when the scan is complete.' }),
  })
  .meta({ title: 'list end', description: 'The last line of every list answer, and only there.' });

export const listLine = z.union([listEnd, listRecord]).meta({ title: 'list answer line', description: 'One line of a list answer (NDJSON): records, then one end line.' });

/** One line of a `delete` request (NDJSON, one per resource). */
export const deleteRequestLine = z
  .strictObject({ id, fingerprint })
  .meta({ title: 'delete request line', description: 'Delete this resource only if its fingerprint is still this one.' });

const answerMessage = message.optional().meta({ description: 'Why, for `error` (required there).' });

/** An `error` answer says why. */
function errorHasMessage(line: { result: string; message?: string }, ctx: z.RefinementCtx): void {
  if (line.result === 'error' && !line.message) ctx.addIssue({ code: 'custom', path: ['message'], message: 'an error answer needs a message' });
}

/** One line of a `delete` answer: exactly one per requested id. */
export const deleteAnswerLine = z
  .strictObject({
    id,
    result: z.enum(['deleted', 'changed', 'absent', 'error']),
    message: answerMessage,
    restoreHandle: z.string().max(4096).optional().meta({ description: 'Where a restorable copy was kept; passed to restore.' }),
  })
  .superRefine(errorHasMessage)
  .meta({
    title: 'delete answer line',
    description:
      'deleted: this exact version was deleted. changed: the fingerprint differs; nothing was deleted. absent: nothing there. error: the delete failed (message says why; whether it is gone is learned by reading it again).',
  });

/** One line of a `mark` request: put the handler's visible marker on a resource, if unchanged. */
export const markRequestLine = z
  .strictObject({ id, fingerprint, run: z.string().meta({ description: 'The reap run\'s id, for the marker.' }) })
  .meta({ title: 'mark request line' });

export const markAnswerLine = z
  .strictObject({
    id,
    result: z.enum(['marked', 'changed', 'absent', 'error']),
    message: answerMessage,
    fingerprint: fingerprint.optional().meta({ description: 'The fingerprint after marking (required with `marked`; the same as before if the marker does not change it).' }),
  })
  .superRefine((line, ctx) => {
    errorHasMessage(line, ctx);
    if (line.result === 'marked' && line.fingerprint === undefined) ctx.addIssue({ code: 'custom', path: ['fingerprint'], message: 'a marked answer needs the fingerprint after marking' });
  })
  .meta({ title: 'mark answer line', description: 'marked (with the fingerprint after marking), changed, absent or error.' });

export const unmarkRequestLine = z.strictObject({ id, fingerprint }).meta({ title: 'unmark request line', description: 'Remove the marker from a resource whose tombstone was lifted.' });

export const unmarkAnswerLine = z
  .strictObject({ id, result: z.enum(['unmarked', 'absent', 'error']), message: answerMessage })
  .superRefine(errorHasMessage)
  .meta({ title: 'unmark answer line', description: 'unmarked, absent or error.' });

export const restoreRequestLine = z
  .strictObject({ id, handle: z.string().meta({ description: 'The restoreHandle the delete answered.' }) })
  .meta({ title: 'restore request line' });

export const restoreAnswerLine = z
  .strictObject({ id, result: z.enum(['restored', 'error']), message: answerMessage })
  .superRefine(errorHasMessage)
  .meta({ title: 'restore answer line', description: 'restored or error.' });

/** The operations that send a batch of lines and answer one line per id. */
export const BATCH_OPS = {
  delete: { request: deleteRequestLine, answer: deleteAnswerLine },
  mark: { request: markRequestLine, answer: markAnswerLine },
  unmark: { request: unmarkRequestLine, answer: unmarkAnswerLine },
  restore: { request: restoreRequestLine, answer: restoreAnswerLine },
} as const;
export type BatchOp = keyof typeof BATCH_OPS;
export type HandlerOp = 'list' | BatchOp;

export type ListRequest = z.output<typeof listRequest>;
export type ListRecord = z.output<typeof listRecord>;
export type BatchAnswer<Op extends BatchOp> = z.output<(typeof BATCH_OPS)[Op]['answer']>;
export type BatchRequest<Op extends BatchOp> = z.output<(typeof BATCH_OPS)[Op]['request']>;

/** Every message, by the file name of its JSON Schema in docs/schemas/. */
export const PROTOCOL_SCHEMAS = {
  'list-request': listRequest,
  'list-answer-line': listLine,
  'delete-request-line': deleteRequestLine,
  'delete-answer-line': deleteAnswerLine,
  'mark-request-line': markRequestLine,
  'mark-answer-line': markAnswerLine,
  'unmark-request-line': unmarkRequestLine,
  'unmark-answer-line': unmarkAnswerLine,
  'restore-request-line': restoreRequestLine,
  'restore-answer-line': restoreAnswerLine,
} as const;

/** The JSON Schema text of one message, as checked in under docs/schemas/. */
export function protocolSchemaText(name: keyof typeof PROTOCOL_SCHEMAS): string {
  const schema = z.toJSONSchema(PROTOCOL_SCHEMAS[name], { io: 'input', target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  const { $schema, ...rest } = schema;
  return `${JSON.stringify({ $schema, $id: `https://reaper.dev/schemas/resource-protocol/v${PROTOCOL_VERSION}/${name}.json`, ...rest }, null, 2)}\n`;
}

/** A handler broke the protocol: what it sent cannot be trusted, so nothing it said is acted on. */
export class ProtocolViolation extends Error {}

/** Parse one line of handler output against a message schema; `where` names the line for the error. */
export function parseLine<S extends z.ZodType>(schema: S, text: string, where: string): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolViolation(`${where}: not JSON: ${preview(text)}`);
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const first = result.error.issues[0]!;
    const at = first.path.length ? `${first.path.join('.')}: ` : '';
    throw new ProtocolViolation(`${where}: ${at}${first.message.replace(/^Invalid (input|option): /, '')} in ${preview(text)}`);
  }
  return result.data;
}

export function preview(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it escapes
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return clean.length > 120 ? `${JSON.stringify(clean.slice(0, 120))}…` : JSON.stringify(clean);
}
