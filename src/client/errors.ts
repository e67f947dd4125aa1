/**
 * The client's errors. An answer of the broker that is not a success becomes a TetraError subclass chosen
 * by its status, carrying the RFC 9457 problem fields (type, title, status, detail and any extension, such
 * as `etag` on a 412 or `results` on a 409 of a queue batch).
 */

export interface ProblemDetails {
  type: string
  title: string
  status: number
  detail: string
  [extra: string]: unknown
}

export class TetraError extends Error {
  override name = 'TetraError'
  readonly status: number
  readonly type: string
  readonly title: string
  readonly detail: string
  /** The whole problem document, extensions included. */
  readonly problem: ProblemDetails

  constructor (problem: ProblemDetails) {
    super(problem.detail !== '' ? problem.detail : problem.title)
    this.status = problem.status
    this.type = problem.type
    this.title = problem.title
    this.detail = problem.detail
    this.problem = problem
  }
}

export class BadRequestError extends TetraError { override name = 'BadRequestError' }
export class UnauthorizedError extends TetraError { override name = 'UnauthorizedError' }
export class ForbiddenError extends TetraError { override name = 'ForbiddenError' }
export class NotFoundError extends TetraError { override name = 'NotFoundError' }
export class ConflictError extends TetraError { override name = 'ConflictError' }
export class PreconditionFailedError extends TetraError { override name = 'PreconditionFailedError' }
export class TooLargeError extends TetraError { override name = 'TooLargeError' }
export class RateLimitedError extends TetraError { override name = 'RateLimitedError' }
export class UnavailableError extends TetraError { override name = 'UnavailableError' }

const BY_STATUS: Record<number, new (p: ProblemDetails) => TetraError> = {
  400: BadRequestError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  412: PreconditionFailedError,
  413: TooLargeError,
  429: RateLimitedError,
  503: UnavailableError
}

/** The error class for a status: 4xx other than the listed ones are BadRequestError-like TetraErrors. */
export function errorFromProblem (problem: ProblemDetails): TetraError {
  const Class = BY_STATUS[problem.status] ?? TetraError
  return new Class(problem)
}

/** The broker could not be reached (refused, reset, DNS) after the retries. */
export class ConnectionError extends Error {
  override name = 'ConnectionError'
  constructor (message: string, options?: { cause?: unknown }) { super(message, options) }
}

/** The call took longer than its timeout. */
export class TimeoutError extends Error {
  override name = 'TimeoutError'
}
