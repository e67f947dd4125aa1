import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs'
import { basename, dirname } from 'node:path'

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
  const name = basename(file)
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  const changed = (): void => {
    if (stopped) return
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => { timer = undefined; if (!stopped) onChange() }, debounceMs)
    timer.unref()
  }
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, filename) => {
      if (filename === null || filename === name) changed()
    })
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
