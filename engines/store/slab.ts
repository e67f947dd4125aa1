/**
 * Key and value bytes (one item per key: its characters, then its value) live in 1 MiB pages carved into
 * fixed-size items by size class (like memcached's slabs) instead of one Buffer per value: a Buffer object
 * costs more than a 64-byte value itself, and a million of them would double the memory of the store.
 * Freed items go to their class's free list and are reused; pages are not returned to the operating
 * system. Values that do not fit in an item of SLAB_MAX_VALUE bytes are kept by the caller as their own
 * Buffer.
 */
const PAGE_SIZE = 1 << 20
const GRAIN = 16
export const SLAB_MAX_VALUE = 16 * 1024
/** Pages are addressed by 16 bits: 64 GiB of small values at most. */
const MAX_PAGES = 1 << 16

function buildClasses (): number[] {
  const sizes: number[] = []
  let size = GRAIN
  while (size < SLAB_MAX_VALUE) {
    sizes.push(size)
    size = Math.max(size + GRAIN, Math.ceil((size * 1.125) / GRAIN) * GRAIN)
  }
  sizes.push(SLAB_MAX_VALUE)
  return sizes
}

const CLASS_SIZES = buildClasses()
/** Class index by ceil(length / GRAIN). */
const CLASS_BY_GRAINS = (() => {
  const table = new Uint8Array(SLAB_MAX_VALUE / GRAIN + 1)
  let c = 0
  for (let g = 0; g < table.length; g++) {
    while (CLASS_SIZES[c] < g * GRAIN) c++
    table[g] = c
  }
  return table
})()

export class Slab {
  private readonly pages: Buffer[] = []
  private readonly freeLists: number[][] = CLASS_SIZES.map(() => [])
  private readonly bumpPage = new Int32Array(CLASS_SIZES.length).fill(-1)
  private readonly bumpOffset = new Int32Array(CLASS_SIZES.length)

  /** Bytes an item of this length occupies (1..SLAB_MAX_VALUE). */
  static itemSize (length: number): number {
    return CLASS_SIZES[CLASS_BY_GRAINS[(length + GRAIN - 1) >>> 4]]
  }

  /** The page holding the item at addr. */
  page (addr: number): Buffer { return this.pages[addr >>> 16] }

  /** The offset of the item at addr in its page. */
  static offset (addr: number): number { return (addr & 0xffff) << 4 }

  free (addr: number, length: number): void {
    this.freeLists[CLASS_BY_GRAINS[(length + GRAIN - 1) >>> 4]].push(addr)
  }

  /** Reserves an item for length bytes (1..SLAB_MAX_VALUE) and returns its address. */
  alloc (length: number): number {
    const c = CLASS_BY_GRAINS[(length + GRAIN - 1) >>> 4]
    const free = this.freeLists[c]
    if (free.length > 0) return free.pop()!
    const size = CLASS_SIZES[c]
    let page = this.bumpPage[c]
    let off = this.bumpOffset[c]
    if (page < 0 || off + size > PAGE_SIZE) {
      if (this.pages.length >= MAX_PAGES) throw new RangeError('value memory exhausted')
      this.pages.push(Buffer.allocUnsafeSlow(PAGE_SIZE))
      page = this.pages.length - 1
      off = 0
      this.bumpPage[c] = page
    }
    this.bumpOffset[c] = off + size
    return page * 65536 + (off >>> 4)
  }
}
