/**
 * The one error vocabulary of the engine core. Engines throw these; each front-end maps them once
 * (HTTP: problem+json with the status below; MQTT: the protocol's refusal).
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'conflict'
  | 'precondition_failed'
  | 'too_large'
  | 'insufficient_storage'
  | 'too_many_requests'
  | 'unauthorized'
  | 'forbidden'
  | 'unavailable'

export class TetraError extends Error {
  readonly kind: ErrorKind
  /** Extra machine-readable fields that front-ends may expose (e.g. the current revision on a conflict). */
  readonly details?: Record<string, unknown>

  constructor (kind: ErrorKind, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = new.target.name
    this.kind = kind
    this.details = details
  }
}

export class InvalidArgument extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('invalid_argument', message, details) }
}
export class NotFound extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('not_found', message, details) }
}
export class Conflict extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('conflict', message, details) }
}
export class PreconditionFailed extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('precondition_failed', message, details) }
}
export class TooLarge extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('too_large', message, details) }
}
export class InsufficientStorage extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('insufficient_storage', message, details) }
}
export class TooManyRequests extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('too_many_requests', message, details) }
}
export class Unauthorized extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('unauthorized', message, details) }
}
export class Forbidden extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('forbidden', message, details) }
}
export class Unavailable extends TetraError {
  constructor (message: string, details?: Record<string, unknown>) { super('unavailable', message, details) }
}
