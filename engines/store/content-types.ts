import { InvalidArgument } from '../errors.js'

const MAX_TYPES = 65535
export const MAX_CONTENT_TYPE_LENGTH = 256

/**
 * Content types interned to small ids with reference counts, so each key holds 4 bytes for its type
 * instead of a string pointer, and types nobody uses any more are forgotten.
 */
export class ContentTypes {
  private readonly ids = new Map<string, number>()
  private readonly names: string[] = []
  private readonly refs: number[] = []
  private readonly freeIds: number[] = []

  /** The type acquired last and its id: batches and repeated writes mostly use one type, so skip the Map. */
  private lastName: string | undefined
  private lastId = -1

  acquire (type: string): number {
    if (type === this.lastName) {
      this.refs[this.lastId]++
      return this.lastId
    }
    let id = this.ids.get(type)
    if (id !== undefined) {
      this.refs[id]++
      this.lastName = type
      this.lastId = id
      return id
    }
    if (type.length > MAX_CONTENT_TYPE_LENGTH) throw new InvalidArgument(`content type is longer than ${MAX_CONTENT_TYPE_LENGTH} characters`)
    id = this.freeIds.pop()
    if (id === undefined) {
      if (this.names.length >= MAX_TYPES) throw new InvalidArgument(`too many distinct content types in use (at most ${MAX_TYPES})`)
      id = this.names.length
      this.names.push(type)
      this.refs.push(1)
    } else {
      this.names[id] = type
      this.refs[id] = 1
    }
    this.ids.set(type, id)
    this.lastName = type
    this.lastId = id
    return id
  }

  release (id: number): void {
    if (--this.refs[id] === 0) {
      if (id === this.lastId) this.lastName = undefined
      this.ids.delete(this.names[id])
      this.names[id] = ''
      this.freeIds.push(id)
    }
  }

  name (id: number): string { return this.names[id] }
}
