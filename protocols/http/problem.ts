import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { TetraError, type ErrorKind } from '../../engines/errors.js'

/** RFC 9457 problem details. */
export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  [extra: string]: unknown
}

export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid_argument: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  precondition_failed: 412,
  too_large: 413,
  too_many_requests: 429,
  unavailable: 503,
  insufficient_storage: 507
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  417: 'Expectation Failed',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  507: 'Insufficient Storage'
}

export function problem (status: number, detail: string, extra: Record<string, unknown> = {}): Problem {
  const title = TITLES[status] ?? 'Error'
  return { type: `https://tetra.dev/problems/${title.toLowerCase().replace(/ /g, '-')}`, title, status, detail, ...extra }
}

export function sendProblem (reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').send(p)
}

export function problemJson (p: Problem): string {
  return JSON.stringify(p)
}

/**
 * A whole HTTP/1.1 answer carrying the problem, for a raw socket (errors before any request object
 * exists); the connection is closed after it.
 */
export function rawProblemResponse (p: Problem, headers: Record<string, string> = {}): string {
  const body = problemJson(p)
  const lines = [`HTTP/1.1 ${p.status} ${STATUS_CODES[p.status] ?? p.title}`, 'Connection: close', 'Content-Type: application/problem+json', `Content-Length: ${Buffer.byteLength(body)}`]
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  return lines.join('\r\n') + '\r\n\r\n' + body
}

/** Maps any thrown error to a problem: engine errors by kind, fastify's own client errors by status. */
export function problemFromError (err: unknown): Problem {
  if (err instanceof TetraError) {
    return problem(STATUS_BY_KIND[err.kind], err.message, err.details ?? {})
  }
  const fe = err as Partial<FastifyError> & { validation?: unknown[], validationContext?: string }
  if (fe.validation !== undefined) {
    return problem(400, `${fe.validationContext ?? 'request'} ${fe.message?.replace(/^(body|querystring|params|headers)\/?/, '') ?? 'is invalid'}`.trim(), { errors: fe.validation })
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return problem(fe.statusCode, fe.message ?? 'bad request')
  }
  return problem(500, 'internal error')
}

export function errorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const p = problemFromError(err)
  if (p.status >= 500 && p.status !== 503 && p.status !== 507) request.log.error({ err, method: request.method, url: request.url, reqId: request.id }, 'request failed')
  void sendProblem(reply, p)
}
