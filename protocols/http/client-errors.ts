import { maxHeaderSize, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { problem, problemFromError, problemJson, rawProblemResponse, sendProblem, type Problem } from './problem.js'
import type { SecurityCounters } from '../security-metrics.js'

/*
 * Errors raised before a route runs, answered as problem+json like every other error: node's HTTP
 * parser (a malformed request line, an unknown method, headers over the limit), the router (bad
 * percent-encoding in a path), node's own checks (Host, Expect). Left alone, node and fastify answer
 * these with an empty body or their own JSON shape.
 */

/** Details for the parse errors of node's HTTP parser (llhttp), by error code. */
const PARSE_ERRORS: Record<string, string> = {
  HPE_INVALID_METHOD: 'the request line does not start with a known HTTP method (such as GET, PUT, POST, DELETE)',
  HPE_INVALID_URL: 'the request target is not a valid URL path (spaces and control characters must be percent-encoded)',
  HPE_INVALID_VERSION: 'the request line does not end with a valid HTTP version (HTTP/1.0 or HTTP/1.1) followed by CRLF',
  HPE_INVALID_HEADER_TOKEN: 'a header name or value holds a character HTTP does not allow there',
  HPE_INVALID_CONTENT_LENGTH: 'the Content-Length header is invalid or comes with Transfer-Encoding',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'the Content-Length header is repeated or invalid',
  HPE_INVALID_TRANSFER_ENCODING: 'the Transfer-Encoding header is invalid (chunked must come last)',
  HPE_INVALID_CHUNK_SIZE: 'a chunk of the chunked body has an invalid size line',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'the chunk extensions of the chunked body are too large'
}

/** The problem for an error of node's HTTP server on a connection (its 'clientError' event). */
export function clientErrorProblem (err: NodeJS.ErrnoException & { reason?: string }, limit = maxHeaderSize): Problem {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return problem(431, `the request line and headers are larger than ${Math.round(limit / 1024)} KB (${limit} bytes)`)
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return problem(413, PARSE_ERRORS[err.code])
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return problem(408, 'the request was not received completely in time')
    default:
      return problem(400, PARSE_ERRORS[err.code ?? ''] ?? `malformed HTTP request${err.reason !== undefined ? ': ' + err.reason : ''}`)
  }
}

type ClientErrorHandler = (this: FastifyInstance, err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex) => void

/**
 * fastify's clientErrorHandler: writes the problem on the raw socket (there is no request object yet)
 * and closes the connection, as node does by default; logged at debug and counted, it is the client's
 * fault.
 */
export function clientErrorHandler (security: SecurityCounters): ClientErrorHandler {
  return function (err, socket) {
    // a reset connection, or one already answered (the parser, fed on while the answer lingers, fails
    // again): nothing to say
    if (err.code === 'ECONNRESET' || socket.destroyed || lingering.has(socket)) return
    security.bad('http')
    this.log.debug({ err: { code: err.code, message: err.message } }, 'bad HTTP request')
    answerOnSocket(this.server as Server & { maxHeaderSize?: number }, err, socket)
  }
}

function answerOnSocket (server: Server & { maxHeaderSize?: number }, err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex): void {
  // as node does: answer only when no answer of a request on this connection has started (an error in
  // the middle of an answer, such as a timeout on a long SSE stream, just closes the connection)
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage
  if (socket.writable && (inFlight === undefined || inFlight === null || !inFlight.headersSent)) {
    socket.end(rawProblemResponse(clientErrorProblem(err, server.maxHeaderSize ?? maxHeaderSize)))
    lingerAfterEnd(socket)
  } else socket.destroy()
}

/** How long a connection closed by the broker keeps reading what its client still sends. */
export const LINGER_MS = 5000
const lingering = new WeakSet<Duplex>()

/**
 * Closes a connection whose client may still be sending (a body the answer did not wait for, the rest
 * of oversized headers) without destroying the answer. Closing a socket with unread bytes makes the
 * kernel send a reset, and a reset wipes the answer from the client's receive buffer before it is read:
 * the client sees "connection reset" instead of its 413 or 431. So, as RFC 9112 9.6 advises (nginx's
 * lingering close): after our FIN, read and discard until the client closes its side, at most LINGER_MS.
 */
function lingerAfterEnd (socket: Duplex): void {
  if (lingering.has(socket)) return
  lingering.add(socket)
  socket.once('finish', () => {
    const done = (): void => { clearTimeout(timer); socket.destroy() }
    const timer = setTimeout(done, LINGER_MS)
    timer.unref()
    socket.once('end', done)
    socket.once('close', () => { clearTimeout(timer) })
    socket.resume()
  })
}

/**
 * Answers given before the request's body was read (413 for a declared length over the limit, a 404,
 * 401 or 415 on a request with a body) on a connection that is then closed: node destroys the socket
 * right after the answer (socket.destroySoon), which resets it while the body is still coming. Such a
 * socket lingers instead (see lingerAfterEnd).
 */
export function registerLingeringClose (app: FastifyInstance): void {
  app.addHook('onSend', (request, _reply, payload, done) => {
    const raw = request.raw
    if (!raw.complete) {
      const socket = raw.socket as Duplex & { destroySoon?: () => void }
      socket.destroySoon = () => {
        socket.end()
        lingerAfterEnd(socket)
      }
    }
    done(null, payload)
  })
}

/** fastify's frameworkErrors: errors of its router, before any hook (FST_ERR_BAD_URL above all). */
export function frameworkErrors (security: SecurityCounters): (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  return (err, request, reply) => {
    security.bad('http')
    if (err.code === 'FST_ERR_BAD_URL') {
      void sendProblem(reply, problem(400, `the path ${JSON.stringify(request.raw.url ?? '')} is not valid percent-encoding: each % must start a %XX escape and the escapes must decode to UTF-8`))
      return
    }
    void sendProblem(reply, problemFromError(err))
  }
}

/**
 * The checks node makes before it hands a request on, done here so their answers are problems:
 * HTTP/1.1 requests must carry Host (RFC 9112 3.2) and an Expect other than 100-continue gets 417
 * (RFC 9110 10.1.1).
 */
export function registerRequestChecks (app: FastifyInstance, security: SecurityCounters): void {
  // node answers a missing Host itself, with an empty 400, unless told not to (it reads this per request)
  ;(app.server as Server & { requireHostHeader: boolean }).requireHostHeader = false
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw
    if (raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1 && raw.headers.host === undefined) {
      security.bad('http')
      void sendProblem(reply.header('connection', 'close'), problem(400, 'an HTTP/1.1 request must carry a Host header (RFC 9112 3.2)'))
      return
    }
    done()
  })
  app.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    security.bad('http')
    const body = problemJson(problem(417, `the expectation ${JSON.stringify(request.headers.expect)} is not supported; the only one is 100-continue`))
    response.writeHead(417, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) })
    response.end(body)
  })
}
