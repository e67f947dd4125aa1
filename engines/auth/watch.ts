import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs'
import { dirname } from 'node:path'

export interface WatchOptions {
  /** Quiet time after the last event before onChange runs: an editor's save is several events. */
  debounceMs?: number
  /** Interval of the stat polling that backs fs.watch up (network file systems, some containers). */
  pollMs?: number
}

/**
 * Calls onChange (debounced) when the file changes. Watches the directory, not the file: editors and
 * `tetra passwd` replace a file by renaming a new one over it, which ends a watch on the old inode. fs.watch
 * is not reliable everywhere, so fs.watchFile polls as well; onChange may run when nothing changed (the
 * caller compares the bytes). Returns the stopper.
 */
export function watchForChanges (file: string, onChange: () => void, options: WatchOptions = {}): () => void {
  const debounceMs = options.debounceMs ?? 100
  const pollMs = options.pollMs ?? 500
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  /** When the first event not yet acted on came: events that never pause (a busy neighbour file) still lead to a call. */
  let pendingSince = 0
  const fire = (): void => {
    timer = undefined
    pendingSince = 0
    if (!stopped) onChange()
  }
  const changed = (): void => {
    if (stopped) return
    const now = Date.now()
    if (pendingSince === 0) pendingSince = now
    if (timer !== undefined) clearTimeout(timer)
    // at most 4 debounce periods after the first event (400 ms by default), so a change lands within 1 s
    timer = setTimeout(fire, Math.max(0, Math.min(debounceMs, pendingSince + 4 * debounceMs - now)))
    timer.unref()
  }
  let watcher: FSWatcher | undefined
  try {
    // Any entry of the directory, not only the file's own name: Kubernetes updates a mounted Secret by
    // renaming its `..data` symlink, which changes the file without an event of its name (and the poll
    // below can miss a swap made before its first stat completes). The bytes are compared before a reload.
    watcher = watch(dirname(file), { persistent: false }, () => { changed() })
    watcher.on('error', () => { watcher?.close(); watcher = undefined })
  } catch {
    watcher = undefined // the directory cannot be watched: polling alone
  }
  const poll = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.size !== prev.size || curr.ino !== prev.ino) changed()
  }
  watchFile(file, { persistent: false, interval: pollMs }, poll)
  return () => {
    stopped = true
    if (timer !== undefined) clearTimeout(timer)
    watcher?.close()
    unwatchFile(file, poll)
  }
}
