import { afterEach, describe, expect, it } from 'vitest'
import { Storage } from '../../engines/storage/storage.js'
import { name, prefixEnd, readU64, u64 } from '../../engines/storage/keys.js'
import { Unavailable } from '../../engines/errors.js'
import { spawnBroker, tempDir } from '../helpers.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function open (fsync: 'always' | 'interval' | 'never' = 'interval', dir?: string): Promise<{ storage: Storage, dir: string }> {
  const tmp = dir === undefined ? tempDir() : undefined
  const storage = await Storage.open({ dir: dir ?? tmp!.dir, fsync, fsyncIntervalMs: 20 })
  cleanups.push(async () => { await storage.close() })
  if (tmp !== undefined) cleanups.unshift(tmp.remove)
  return { storage, dir: dir ?? tmp!.dir }
}

describe('keys', () => {
  it('orders u64 big-endian numerically and round-trips', () => {
    const values = [0, 1, 255, 256, 65535, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]
    const keys = values.map(u64)
    const sorted = [...keys].sort(Buffer.compare)
    expect(sorted.map(k => readU64(k))).toEqual(values)
  })

  it('length-prefixes names so one name never falls in the range of another', () => {
    const a = name('a')
    const ab = name('ab')
    const end = prefixEnd(a)
    expect(Buffer.compare(ab, a) > 0 && Buffer.compare(ab, end) < 0).toBe(false)
    expect(prefixEnd(Buffer.from([1, 0xff]))).toEqual(Buffer.from([2]))
  })
})

describe('Storage', () => {
  it('encodes a put given as a function when its group commit is assembled, once, with what the group added', async () => {
    const { storage } = await open('never')
    const p = storage.partition('lazy')
    const parts: string[] = []
    let calls = 0
    const first = storage.write([p.put(Buffer.from('k'), () => { calls++; return Buffer.from(parts.join(',')) })])
    parts.push('a')
    // later writes of the same tick still add to what the record holds
    const second = storage.write([p.put(Buffer.from('other'), Buffer.from('x'))])
    parts.push('b')
    await Promise.all([first, second])
    parts.push('c')
    expect(calls).toBe(1)
    expect((await p.get(Buffer.from('k')))?.toString()).toBe('a,b')
  })

  it('keeps binary keys in byte order within a partition, separate from other partitions', async () => {
    const { storage } = await open()
    const p = storage.partition('p')
    const q = storage.partition('q')
    const offsets = [5, 300, 1, 70000, 2]
    await storage.write(offsets.map(n => p.put(u64(n), Buffer.from(String(n)))))
    await storage.write([q.put(u64(3), Buffer.from('other'))])
    const read = []
    for await (const [k, v] of p.entries()) read.push([readU64(k), v.toString()])
    expect(read).toEqual([[1, '1'], [2, '2'], [5, '5'], [300, '300'], [70000, '70000']])
    const page = await p.range({ gte: u64(2), lt: u64(301), limit: 2 })
    expect(page.map(([k]) => readU64(k))).toEqual([2, 5])
    const reversed = await p.range({ reverse: true, limit: 1 })
    expect(readU64(reversed[0][0])).toBe(70000)
    expect((await q.get(u64(3)))?.toString()).toBe('other')
    expect(await p.get(u64(3))).toBeUndefined()
  })

  it('groups the writes of one tick into one batch, atomically, and applies deletes', async () => {
    const { storage } = await open()
    const p = storage.partition('p')
    const before = storage.stats.batches
    await Promise.all(Array.from({ length: 50 }, (_, i) => storage.write([p.put(u64(i), Buffer.from('x')), p.put(u64(1000 + i), Buffer.from('y'))])))
    expect(storage.stats.batches - before).toBe(1)
    expect(storage.stats.ops).toBeGreaterThanOrEqual(100)
    await storage.write([p.del(u64(0)), p.del(u64(1000))])
    expect(await p.getMany([u64(0), u64(1), u64(1000)])).toEqual([undefined, Buffer.from('x'), undefined])
  })

  it('keeps writes made while a batch is in flight for the next batch, in order', async () => {
    const { storage } = await open('always')
    const p = storage.partition('p')
    const first = storage.write([p.put(Buffer.from('k'), Buffer.from('1'))])
    await new Promise(resolve => setImmediate(resolve))
    const second = storage.write([p.put(Buffer.from('k'), Buffer.from('2'))])
    await Promise.all([first, second])
    expect((await p.get(Buffer.from('k')))?.toString()).toBe('2')
  })

  it('fsyncs within the interval with the interval policy, and on every batch with always', async () => {
    const { storage } = await open('interval')
    const p = storage.partition('p')
    await storage.write([p.put(Buffer.from('a'), Buffer.from('1'))])
    const syncs = storage.stats.syncs
    await new Promise(resolve => setTimeout(resolve, 60))
    expect(storage.stats.syncs).toBeGreaterThan(syncs)

    const always = (await open('always')).storage
    const a = always.partition('p')
    const s0 = always.stats.syncs
    await always.write([a.put(Buffer.from('a'), Buffer.from('1'))])
    await always.write([a.put(Buffer.from('b'), Buffer.from('1'))])
    expect(always.stats.syncs - s0).toBe(2)
  })

  it('refuses a malformed op without writing its batch, and keeps serving later writes', async () => {
    const { storage } = await open()
    const p = storage.partition('p')
    const bad = { type: 'put', partition: p, key: undefined, value: Buffer.from('x') } as unknown as Parameters<Storage['write']>[0][number]
    await expect(storage.write([p.put(Buffer.from('same-batch'), Buffer.from('1')), bad])).rejects.toBeInstanceOf(Unavailable)
    expect(await p.get(Buffer.from('same-batch'))).toBeUndefined()
    await storage.write([p.put(Buffer.from('later'), Buffer.from('2'))])
    expect((await p.get(Buffer.from('later')))?.toString()).toBe('2')
  })

  it('reads back everything after close and reopen', async () => {
    const tmp = tempDir()
    cleanups.push(tmp.remove)
    const first = await Storage.open({ dir: tmp.dir, fsync: 'never' })
    const p = first.partition('data')
    await first.write(Array.from({ length: 1000 }, (_, i) => p.put(u64(i), Buffer.from(`v${i}`))))
    await first.close()
    const second = await Storage.open({ dir: tmp.dir, fsync: 'never' })
    cleanups.push(async () => { await second.close() })
    let n = 0
    for await (const [k, v] of second.partition('data').entries()) {
      expect(v.toString()).toBe(`v${readU64(k)}`)
      n++
    }
    expect(n).toBe(1000)
  })

  it('refuses writes after close', async () => {
    const tmp = tempDir()
    cleanups.push(tmp.remove)
    const s = await Storage.open({ dir: tmp.dir, fsync: 'never' })
    await s.close()
    await expect(s.write([s.partition('p').put(Buffer.from('a'), Buffer.from('b'))])).rejects.toBeInstanceOf(Unavailable)
  })

  it('fails with a clear error when another handle holds the data directory', async () => {
    const { dir } = await open()
    await expect(Storage.open({ dir, fsync: 'never' })).rejects.toThrow(/in use by another process/)
  })

  it('a second broker process on the same data dir exits at once with a clear message', async () => {
    const tmp = tempDir()
    cleanups.push(tmp.remove)
    const first = await spawnBroker(['--data-dir', tmp.dir])
    cleanups.push(async () => { first.child.kill('SIGKILL'); await first.exited })
    const second = spawnBroker(['--data-dir', tmp.dir])
    await expect(second).rejects.toThrow(/exited \(1\) before listening: tetra: cannot start: the data directory .* is in use by another process/)
  })
})
