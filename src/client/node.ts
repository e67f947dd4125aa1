/**
 * tetra/client in Node (the "node" condition of the package's exports): the same client, whose calls go
 * over node:http with keep-alive agents (node-fetch.ts) unless a `fetch` or a `send` is given.
 */
import { Tetra as BaseTetra } from './index.js'
import type { ClientOptions, Sender } from './http.js'
import { nodeSender } from './node-fetch.js'

export * from './index.js'
export { nodeSender } from './node-fetch.js'

let shared: Sender | undefined

export class Tetra extends BaseTetra {
  constructor (options: ClientOptions = {}) {
    super(options.fetch !== undefined || options.send !== undefined ? options : { ...options, send: shared ??= nodeSender() })
  }
}
