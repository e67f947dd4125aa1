import type { FastifyInstance, FastifyRequest } from 'fastify'

/*
 * What the JSON text of a request body says about the strings parsed from it, so that routes taking
 * message payloads can hand a string payload over as its JSON text without serialising it again. The
 * payload of a message given as a JSON value is stored as its compact JSON text, which for a string `s`
 * is JSON.stringify(s); in the common case that is just `"` + s + `"` (see BodyText).
 */

/**
 * `unescaped`: the text holds no backslash. Then no string in it needs escaping: a quote, a backslash or
 * a control character inside a string literal can only be written with a backslash, and text decoded from
 * UTF-8 holds no lone surrogates; so JSON.stringify(s) of each of its strings is `"` + s + `"`. `ascii`:
 * the text is all ASCII, so each of those strings takes s.length + 2 bytes.
 */
export interface BodyText { unescaped: boolean, ascii: boolean }
const bodyTexts = new WeakMap<object, BodyText>()

type JsonBodyParser = (request: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => void

/**
 * Parses JSON bodies in `scope` with fastify's own parser (same limits, same prototype poisoning
 * checks) and notes what the text says about the strings in it (see BodyText).
 */
export function registerBodyTextParser (scope: FastifyInstance): void {
  const config = scope.initialConfig
  const parseJson = scope.getDefaultJsonParser(config.onProtoPoisoning ?? 'error', config.onConstructorPoisoning ?? 'error') as JsonBodyParser
  scope.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string
    parseJson(request, text, (err, value) => {
      if (err === null) noteBodyText(value, text)
      done(err, value)
    })
  })
}

/** Notes what the JSON text `text` says about the strings of `value`, the value parsed from it. */
export function noteBodyText (value: unknown, text: string): void {
  if (typeof value !== 'object' || value === null) return
  const unescaped = !text.includes('\\')
  bodyTexts.set(value, { unescaped, ascii: unescaped && Buffer.byteLength(text, 'utf8') === text.length })
}

/** What was noted of the text `body` was parsed from; undefined when it came another way. */
export function bodyTextOf (body: object): BodyText | undefined {
  return bodyTexts.get(body)
}

/** A JSON string payload whose JSON text is `"` + payload + `"` (see BodyText). */
export function isPlainString (payload: unknown, encoding: string | undefined, text: BodyText | undefined): payload is string {
  return text !== undefined && text.unescaped && typeof payload === 'string' && (encoding === undefined || encoding === 'json')
}
