/**
 * tetra/client in Node (the "node" condition of the package's exports): the same client, whose calls go
 * over pooled keep-alive sockets (node-socket.ts; SSE and https over node:http, node-fetch.ts) unless a
 * `fetch` or a `send` is given.
 */
import { Tetra as BaseTetra } from './index.js'
import type { ClientOptions, Sender } from './http.js'
import { nodeSender } from './node-fetch.js'
import { socketSender } from './node-socket.js'

export * from './index.js'
export { nodeSender } from './node-fetch.js'
export { socketSender } from './node-socket.js'

let shared: Sender | undefined

export class Tetra extends BaseTetra {
  constructor (options: ClientOptions = {}) {
    super(options.fetch !== undefined || options.send !== undefined ? options : { ...options, send: shared ??= socketSender(nodeSender()) })
  }
}
