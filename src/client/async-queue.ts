/** A buffer between a push source (MQTT.js events) and an async iterator that pulls from it. */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = []
  private waiting: Array<{ resolve: (r: IteratorResult<T>) => void, reject: (e: unknown) => void }> = []
  private done = false
  private error: unknown

  constructor (private readonly onReturn: () => void | Promise<void> = () => {}) {}

  push (item: T): void {
    if (this.done) return
    const waiter = this.waiting.shift()
    if (waiter !== undefined) waiter.resolve({ value: item, done: false })
    else this.items.push(item)
  }

  /** Ends the iteration, with an error to throw when given. */
  end (error?: unknown): void {
    if (this.done) return
    this.done = true
    this.error = error
    for (const w of this.waiting) {
      if (error !== undefined) w.reject(error)
      else w.resolve({ value: undefined, done: true })
    }
    this.waiting = []
  }

  async next (): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return { value: this.items.shift() as T, done: false }
    if (this.done) {
      if (this.error !== undefined) { const e = this.error; this.error = undefined; throw e }
      return { value: undefined, done: true }
    }
    return await new Promise((resolve, reject) => { this.waiting.push({ resolve, reject }) })
  }

  async return (): Promise<IteratorResult<T>> {
    this.end()
    this.items.length = 0
    await this.onReturn()
    return { value: undefined, done: true }
  }

  [Symbol.asyncIterator] (): AsyncIterableIterator<T> { return this }
}
