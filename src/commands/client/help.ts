/** The user commands that talk to a running broker (built on tetra/client): names, usage and examples. */

export const CLIENT_HELP = {
  pub: {
    usage: 'tetra pub TOPIC MESSAGE|- [-q 0|1|2] [-r] [--user-property NAME=VALUE]... [--content-type T] [--response-topic T] [--expiry S]',
    what: 'Publish MESSAGE (UTF-8 text, sent byte for byte) to TOPIC; with -, each line of stdin is a message.',
    example: 'tetra pub sensors/kitchen/temp \'{"celsius":21.5}\' -q 1 -r'
  },
  sub: {
    usage: 'tetra sub FILTER... [--count N] [--no-retained] [--mqtt URL]',
    what: 'Print every message whose topic matches a filter (SSE, or MQTT with --mqtt mqtt://host:1883); --count exits after N.',
    example: 'tetra sub \'sensors/+/temp\' \'alerts/#\''
  },
  get: {
    usage: 'tetra get KEY',
    what: 'Print the value of KEY (exit 1 when missing).',
    example: 'tetra get session/abc'
  },
  set: {
    usage: 'tetra set KEY VALUE|- [--ttl SECONDS] [--nx] [--if-match ETAG]',
    what: 'Set KEY to VALUE (stored as JSON when it is a JSON text, else as text; - reads stdin as bytes). Exit 1 when --nx or --if-match fails.',
    example: 'tetra set session/abc \'{"user":42}\' --ttl 3600'
  },
  del: {
    usage: 'tetra del KEY [--if-match ETAG]',
    what: 'Delete KEY (exit 1 when it did not exist).',
    example: 'tetra del session/abc'
  },
  incr: {
    usage: 'tetra incr KEY [--by N]',
    what: 'Add N (default 1) to the integer at KEY atomically and print the result.',
    example: 'tetra incr visits/home --by 5'
  },
  keys: {
    usage: 'tetra keys [PREFIX]',
    what: 'List the keys under PREFIX (all keys without it), with their size and TTL on a terminal.',
    example: 'tetra keys session/'
  },
  push: {
    usage: 'tetra push QUEUE MESSAGE|- [--delay S] [--priority P] [--dedup-id ID]',
    what: 'Push MESSAGE to QUEUE; with -, each line of stdin is a message, pushed in batches of 1000 (progress on a terminal).',
    example: 'seq 1000000 | tetra push numbers -'
  },
  pop: {
    usage: 'tetra pop QUEUE [--ack] [--count N] [--wait S]',
    what: 'Receive (lease) up to N messages (default 1), waiting up to S seconds; --ack acknowledges them at once. Exit 1 when none came.',
    example: 'tetra pop thumbnails --ack --wait 20'
  },
  dlq: {
    usage: 'tetra dlq QUEUE [--redrive]',
    what: 'List the dead letters of QUEUE; --redrive puts them all back to ready.',
    example: 'tetra dlq thumbnails --redrive'
  },
  append: {
    usage: 'tetra append STREAM MESSAGE|- [--key K] [--dedup-id ID]',
    what: 'Append MESSAGE to STREAM and print its offset; with -, each line of stdin, in batches of 1000.',
    example: 'tetra append orders \'{"id":42}\' --key customer-7'
  },
  read: {
    usage: 'tetra read STREAM [--from N|start|end | --time T] [--limit N]',
    what: 'Print the messages of STREAM from an offset (default start) or a time (epoch ms or ISO 8601) to its end.',
    example: 'tetra read orders --time 2026-11-22T10:00:00Z --limit 100'
  },
  tail: {
    usage: 'tetra tail STREAM|FILTER [--from N|start|end] [--count N]',
    what: 'Follow a stream live (resuming after a broker restart), or the messages of a topic filter when no stream has that name.',
    example: 'tetra tail orders --from start'
  },
  stats: {
    usage: 'tetra stats',
    what: 'The broker\'s figures: connections, messages, queues, streams, store, memory.',
    example: 'tetra stats'
  }
} as const

export type ClientCommandName = keyof typeof CLIENT_HELP

export function isClientCommand (word: string | undefined): word is ClientCommandName {
  return word !== undefined && Object.prototype.hasOwnProperty.call(CLIENT_HELP, word)
}

export const CLIENT_OPTIONS_HELP = [
  'Options of every command talking to a broker:',
  '  --url URL        the broker\'s HTTP address (env TETRA_URL; default http://127.0.0.1:8080)',
  '  --token TOKEN    a bearer token (env TETRA_TOKEN); or --user NAME --password PASS (env TETRA_USER, TETRA_PASSWORD)',
  '  --json           one JSON object per line even on a terminal (the default when the output is piped)',
  '  --timeout MS     per call (default 30000)'
].join('\n')

export function clientCommandsHelp (): string {
  const lines = ['Commands (talk to a running broker; `tetra COMMAND --help` for one):']
  for (const [, h] of Object.entries(CLIENT_HELP)) lines.push(`  ${h.usage}`, `      ${h.what}`)
  return lines.join('\n') + '\n\n' + CLIENT_OPTIONS_HELP
}

export function commandHelp (name: ClientCommandName): string {
  const h = CLIENT_HELP[name]
  return `usage: ${h.usage}\n\n${h.what}\n\nexample:\n  ${h.example}\n\n${CLIENT_OPTIONS_HELP}\n`
}
