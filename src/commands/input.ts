/** Reading a secret for `tetra passwd`: all of standard input, or a prompt without echo on a terminal. */

export async function readAllStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  // one trailing newline is the end of the line `echo` or a here-doc adds, not part of the password
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
}

/** Asks on stderr and reads one line from a terminal with echo off (raw mode). */
export function promptHidden (question: string): Promise<string> {
  const stdin = process.stdin
  return new Promise((resolve, reject) => {
    let typed = ''
    const done = (err?: Error): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      if (err !== undefined) reject(err)
      else resolve(typed)
    }
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') { done(); return }
        if (ch === '\u0003') { done(new Error('interrupted')); return }
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('')
        else typed += ch
      }
    }
    stdin.setEncoding('utf8')
    // echo off before the question shows: what is typed right after it must not appear
    stdin.setRawMode(true)
    process.stderr.write(question)
    stdin.on('data', onData)
    stdin.resume()
  })
}
