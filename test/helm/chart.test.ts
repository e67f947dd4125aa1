import { describe, it, expect } from 'vitest'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { Ajv } from 'ajv'
import { SETTINGS, type Setting } from '../../src/config.js'

/**
 * The Helm chart checked with real parsers (no helm binary needed): its YAML, its schema, its templates'
 * actions and values, and its agreement with the broker's own settings, routes and image.
 */

const root = fileURLToPath(new URL('../..', import.meta.url))
const chartDir = join(root, 'helm/tetra')
const read = (p: string): string => readFileSync(join(chartDir, p), 'utf8')
const templateNames = readdirSync(join(chartDir, 'templates')).filter(f => /\.(ya?ml|tpl|txt)$/.test(f))
const templates = new Map(templateNames.map(f => [f, read(`templates/${f}`)]))
const allTemplates = [...templates.values()].join('\n')

type Values = Record<string, unknown>
const loadValues = (): Values => parseYaml(read('values.yaml')) as Values
const schema = JSON.parse(read('values.schema.json')) as Record<string, unknown>

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** values with `path` (a.b.c) set to `value`, or deleted when value is undefined; the original is untouched. */
function withValue (values: Values, path: string, value: unknown): Values {
  const copy = structuredClone(values)
  const parts = path.split('.')
  let node: Record<string, unknown> = copy
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>
  if (value === undefined) Reflect.deleteProperty(node, parts[parts.length - 1])
  else node[parts[parts.length - 1]] = value
  return copy
}

// ---- Go template actions ------------------------------------------------------------------------------

interface Action { text: string, line: number }

/** The `{{ }}` actions of a template, trim markers and comments removed. */
function actions (source: string): Action[] {
  const out: Action[] = []
  const re = /\{\{-?\s*([\s\S]*?)\s*-?\}\}/g
  for (let m = re.exec(source); m !== null; m = re.exec(source)) {
    const text = m[1].trim()
    if (text.startsWith('/*')) continue
    out.push({ text, line: source.slice(0, m.index).split('\n').length })
  }
  return out
}

/** What is wrong with the nesting of a template's block actions (if/range/with/define/block ... end). */
function blockProblems (source: string): string[] {
  const problems: string[] = []
  if ((source.match(/\{\{/g) ?? []).length !== (source.match(/\}\}/g) ?? []).length) problems.push('unmatched {{ or }}')
  const stack: Action[] = []
  for (const a of actions(source)) {
    const word = /^(\w+)/.exec(a.text)?.[1]
    if (word === 'if' || word === 'range' || word === 'with' || word === 'define' || word === 'block') stack.push(a)
    else if (word === 'else') {
      const open = stack[stack.length - 1]
      if (open === undefined || !/^(if|range|with)\b/.test(open.text)) problems.push(`line ${a.line}: else outside if/range/with`)
    } else if (word === 'end') {
      if (stack.pop() === undefined) problems.push(`line ${a.line}: end without a block`)
    }
  }
  for (const open of stack) problems.push(`line ${open.line}: "${open.text}" is never closed by end`)
  return problems
}

/** The .Values paths a template uses (also through $.Values). */
function valuePaths (source: string): string[] {
  return [...source.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map(m => m[1].slice(1))
}

/** The paths that values.yaml does not define. */
function missingPaths (paths: readonly string[], values: Values): string[] {
  return paths.filter(path => {
    let node: unknown = values
    for (const part of path.split('.')) {
      if (!isObject(node) || !(part in node)) return true
      node = node[part]
    }
    return false
  })
}

// ---- the env the chart renders --------------------------------------------------------------------------

/** TETRA_* env name -> the .Values.config key it is rendered from (templates/_env.tpl). */
function chartEnv (source: string): Map<string, string> {
  const env = new Map<string, string>()
  for (const m of source.matchAll(/- name: (TETRA_[A-Z0-9_]+)\s*\n\s*value: \{\{[^}]*\.Values\.config\.([A-Za-z0-9]+)[^}]*\}\}/g)) env.set(m[1], m[2])
  return env
}

/** What disagrees between the broker's settings, the chart's env and the chart's values. */
function settingProblems (settings: readonly Setting[], env: Map<string, string>, values: Values, templateText: string): string[] {
  const problems: string[] = []
  const config = values.config as Record<string, unknown>
  for (const s of settings) {
    if (!(s.key in config)) problems.push(`setting ${s.key} has no value config.${s.key} in values.yaml`)
    if (!env.has(s.env)) problems.push(`setting ${s.key} is not rendered as ${s.env}`)
    else if (env.get(s.env) !== s.key) problems.push(`${s.env} is rendered from config.${env.get(s.env) ?? ''}, not config.${s.key}`)
  }
  const known = new Set(settings.map(s => s.env))
  for (const name of new Set(templateText.match(/TETRA_[A-Z0-9_]+/g) ?? [])) {
    if (!known.has(name)) problems.push(`${name} is no setting of src/config.ts`)
  }
  const keys = new Set<string>(settings.map(s => s.key))
  for (const k of Object.keys(config)) if (!keys.has(k)) problems.push(`config.${k} is no setting of src/config.ts`)
  return problems
}

/** Every leaf path of values.yaml (an empty map or list is a leaf). */
function leafPaths (node: unknown, prefix = ''): string[] {
  if (!isObject(node) || Object.keys(node).length === 0) return [prefix]
  return Object.entries(node).flatMap(([k, v]) => leafPaths(v, prefix === '' ? k : `${prefix}.${k}`))
}

// ---- the tests --------------------------------------------------------------------------------------------

describe('helm/tetra', () => {
  it('Chart.yaml is an apiVersion v2 application chart of this package version', () => {
    const chart = parseYaml(read('Chart.yaml')) as Record<string, unknown>
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string, license: string }
    expect(chart.apiVersion).toBe('v2')
    expect(chart.name).toBe('tetra')
    expect(chart.type).toBe('application')
    expect(chart.appVersion).toBe(pkg.version)
    expect(typeof chart.version).toBe('string')
    expect(() => parseYaml('apiVersion: v2\nname: [tetra')).toThrow() // the parser does reject broken YAML
  })

  it('values.yaml validates against values.schema.json, and bad values do not', () => {
    const ajv = new Ajv({ allErrors: true, strict: false })
    const validate = ajv.compile(schema)
    const values = loadValues()
    expect(validate(values), JSON.stringify(validate.errors)).toBe(true)
    const good: Array<[string, unknown]> = [
      ['config.httpBodyLimit', '64mb'], ['config.storeMaxMemory', '1.5gb'], ['config.corsOrigin', ['*']], ['config.host', '::'],
      ['config.fsync', 'always'], ['auth.existingSecret', 'tetra-auth'], ['auth.file', { users: [], roles: {} }],
      ['service.mqtt.type', 'LoadBalancer'], ['persistence.storageClass', 'fast'], ['persistence.size', '100Gi'],
      ['podDisruptionBudget.minAvailable', 1], ['tls.existingSecret', 'tetra-tls'], ['ingress.hosts', ['tetra.example.com']]
    ]
    for (const [path, value] of good) expect(validate(withValue(values, path, value)), `${path}=${JSON.stringify(value)}: ${JSON.stringify(validate.errors)}`).toBe(true)
    const bad: Array<[string, unknown]> = [
      ['config.mqttPort', 70000], ['config.mqttPort', 0], ['config.mqttPort', '1883'], ['config.httpPort', 8080.5], ['config.mqttsPort', -1],
      ['config.fsync', 'sometimes'], ['config.logLevel', 'loud'], ['config.storeEviction', 'fifo'],
      ['config.host', '127.0.0.1'], ['config.dataDir', 'data'], ['config.httpBodyLimit', '16 megs'], ['config.storeMaxValue', 0],
      ['config.fsyncIntervalMs', 0], ['config.shutdownTimeoutMs', 50], ['config.streamAutocreate', 'yes'], ['config.corsOrigin', '*'],
      ['config.allowAnonymous', 'true'], ['config.mqttMaxInflight', 0], ['config.authFile', 'auth.json'],
      ['config.noSuchSetting', 1], ['config.mqttPort', undefined],
      ['image.pullPolicy', 'Sometimes'], ['image.repository', ''], ['service.mqtt.type', 'Public'], ['service.http.port', 65536],
      ['service.mqtt.tlsPort', 'x'], ['persistence.size', '8 gigs'], ['persistence.accessModes', []], ['auth.file', 42], ['auth.secretKey', 'a/b'],
      ['tls.clientCa', 'yes'], ['ingress.enabled', 'true'], ['ingress.hosts', 'tetra.example.com'], ['probes.liveness.periodSeconds', 0],
      ['podSecurityContext.runAsNonRoot', false], ['podSecurityContext.runAsUser', 0], ['securityContext.allowPrivilegeEscalation', true],
      ['securityContext.privileged', true], ['serviceMonitor.interval', 'often'], ['terminationGracePeriodMarginSeconds', -1],
      ['resources.limits', { memory: 'lots' }], ['nope', true]
    ]
    for (const [path, value] of bad) expect(validate(withValue(values, path, value)), `${path}=${JSON.stringify(value)} should be rejected`).toBe(false)
  })

  it("every template's {{ }} actions balance", () => {
    expect(templates.size).toBeGreaterThanOrEqual(9)
    for (const [name, source] of templates) expect(blockProblems(source), name).toEqual([])
    // the checker finds what it is for
    const sts = templates.get('statefulset.yaml') ?? ''
    expect(blockProblems(sts.replace('{{- end }}', ''))).not.toEqual([])
    expect(blockProblems(sts + '\n{{ end }}')).not.toEqual([])
    expect(blockProblems(sts.replace('}}', '}'))).not.toEqual([])
    expect(blockProblems('{{ else }}')).not.toEqual([])
  })

  it('every .Values path a template uses exists in values.yaml', () => {
    const values = loadValues()
    const used = [...new Set(valuePaths(allTemplates))]
    expect(used.length).toBeGreaterThan(50)
    expect(missingPaths(used, values)).toEqual([])
    expect(missingPaths(['config.nope', 'auth.existingSecret.x', 'service.mqtt.port'], values)).toEqual(['config.nope', 'auth.existingSecret.x'])
    expect(missingPaths(used, withValue(values, 'tls.clientCa', undefined))).toContain('tls.clientCa')
  })

  it('every broker setting has a chart value rendered as its TETRA_* env, and the chart renders no other', () => {
    const values = loadValues()
    const env = chartEnv(templates.get('_env.tpl') ?? '')
    expect(env.size).toBe(SETTINGS.length)
    expect(settingProblems(SETTINGS, env, values, allTemplates)).toEqual([])
    // a setting added to the broker without its chart value, a misspelled env, a value of no setting: all fail
    const added: Setting = { key: 'mqttNewThing' as Setting['key'], flag: '--mqtt-new-thing', env: 'TETRA_MQTT_NEW_THING', kind: 'int', default: 1, description: '' }
    expect(settingProblems([...SETTINGS, added], env, values, allTemplates)).toEqual([
      'setting mqttNewThing has no value config.mqttNewThing in values.yaml', 'setting mqttNewThing is not rendered as TETRA_MQTT_NEW_THING'
    ])
    expect(settingProblems(SETTINGS, env, values, allTemplates + '\n- name: TETRA_MQTT_PROT')).toEqual(['TETRA_MQTT_PROT is no setting of src/config.ts'])
    expect(settingProblems(SETTINGS, env, withValue(values, 'config.extra', 1), allTemplates)).toEqual(['config.extra is no setting of src/config.ts'])
    const swapped = new Map(env)
    swapped.set('TETRA_MQTT_PORT', 'httpPort')
    expect(settingProblems(SETTINGS, swapped, values, allTemplates)).toEqual(['TETRA_MQTT_PORT is rendered from config.httpPort, not config.mqttPort'])
    // the schema knows every setting, with the broker's own choices
    const cfg = (schema.properties as Record<string, { properties: Record<string, { enum?: string[], minimum?: number }>, required: string[] }>).config
    expect(new Set(cfg.required)).toEqual(new Set(SETTINGS.map(s => s.key)))
    for (const s of SETTINGS) {
      if (s.kind === 'enum') expect(cfg.properties[s.key].enum, s.key).toEqual([...(s.allowed ?? [])])
      if (s.kind === 'int') expect(cfg.properties[s.key].minimum, s.key).toBe(s.min ?? 0)
    }
  })

  it("the chart's defaults are the broker's, except where a pod needs otherwise", () => {
    const config = loadValues().config as Record<string, unknown>
    // deliberate: every interface, the volume, and the Secrets' mount paths
    expect(config.host).toBe('0.0.0.0')
    expect(config.dataDir).toBe('/data')
    expect(config.authFile).toMatch(/^\/etc\/tetra\//)
    expect(config.allowAnonymous).toBe(false)
    const deliberate = new Set(['host', 'dataDir', 'authFile', 'tlsCert', 'tlsKey', 'tlsCa'])
    for (const s of SETTINGS) if (!deliberate.has(s.key)) expect(config[s.key], s.key).toEqual(s.default)
    expect(config.mqttPort).toBe(1883)
    expect(config.httpPort).toBe(8080)
    expect(config.mqttsPort).toBe(8883)
    const values = loadValues() as { service: { mqtt: { port: number, tlsPort: number }, http: { port: number } } }
    expect([values.service.mqtt.port, values.service.mqtt.tlsPort, values.service.http.port]).toEqual([1883, 8883, 8080])
  })

  it('the image agrees: ports, data path, user', () => {
    const text = readFileSync(join(root, 'Dockerfile'), 'utf8')
    const values = loadValues() as { config: Record<string, number | string>, securityContext: { runAsUser: number } }
    const exposed = /^EXPOSE\s+(.*)$/m.exec(text)?.[1].split(/\s+/).map(Number) ?? []
    for (const p of [values.config.mqttPort, values.config.mqttsPort, values.config.httpPort]) expect(exposed).toContain(p)
    expect(text).toMatch(new RegExp(`^VOLUME\\s+.*${String(values.config.dataDir)}`, 'm'))
    expect(values.securityContext.runAsUser).toBe(1000) // the node user of the node images, the image's USER
    expect(text).toMatch(/^USER\s+(node|1000)\b/m)
  })

  it('probes and the ServiceMonitor use routes the broker serves', () => {
    const ops = readFileSync(join(root, 'protocols/http/routes/ops.ts'), 'utf8')
    const routes = new Set([...ops.matchAll(/app\.get\('([^']+)'/g)].map(m => m[1]))
    const sts = templates.get('statefulset.yaml') ?? ''
    const probePath = (kind: string): string | undefined => new RegExp(`${kind}:\\s*\\n\\s*httpGet:\\s*\\n\\s*path: (\\S+)`).exec(sts)?.[1]
    expect(probePath('livenessProbe')).toBe('/healthz')
    expect(probePath('readinessProbe')).toBe('/readyz')
    expect(probePath('startupProbe')).toBe('/readyz')
    for (const p of ['/healthz', '/readyz']) expect(routes.has(p), p).toBe(true)
    const sm = templates.get('servicemonitor.yaml') ?? ''
    expect(sm).toContain('apiVersion: monitoring.coreos.com/v1')
    const metricsPath = /path: (\S+)/.exec(sm)?.[1] ?? ''
    expect(routes.has(metricsPath), metricsPath).toBe(true)
    expect(ops).toMatch(/'\/metrics'.*resource: 'system', action: 'metrics'/) // the token must allow system:metrics
    expect(sm).toMatch(/authorization:\s*\n\s*type: Bearer\s*\n\s*credentials:/)
    // the ports are the container's named ports, numbered from the broker's settings
    expect(sts).toMatch(/name: mqtt\s*\n\s*containerPort: \{\{ \.Values\.config\.mqttPort \}\}/)
    expect(sts).toMatch(/name: mqtts\s*\n\s*containerPort: \{\{ \.Values\.config\.mqttsPort \}\}/)
    expect(sts).toMatch(/name: http\s*\n\s*containerPort: \{\{ \.Values\.config\.httpPort \}\}/)
  })

  it('the pod: one replica, data volume at config.dataDir, read-only root, grace period from the shutdown timeout', () => {
    const sts = templates.get('statefulset.yaml') ?? ''
    expect(sts).toMatch(/^kind: StatefulSet$/m)
    expect(sts).toMatch(/^\s+replicas: 1$/m)
    expect(sts).toMatch(/- name: data\s*\n\s*mountPath: \{\{ \.Values\.config\.dataDir \}\}/)
    expect(sts).toMatch(/volumeClaimTemplates:\s*\n\s*- metadata:\s*\n\s*name: data/)
    expect(sts).toContain('storage: {{ .Values.persistence.size | quote }}')
    expect(sts).toContain('.Values.persistence.storageClass')
    expect(sts).toMatch(/terminationGracePeriodSeconds: \{\{ add \(div \(add \(int64 \.Values\.config\.shutdownTimeoutMs\) 999\) 1000\) \.Values\.terminationGracePeriodMarginSeconds \}\}/)
    const values = loadValues() as { config: { shutdownTimeoutMs: number }, terminationGracePeriodMarginSeconds: number, securityContext: Record<string, unknown>, podSecurityContext: Record<string, unknown> }
    expect(Math.ceil(values.config.shutdownTimeoutMs / 1000) + values.terminationGracePeriodMarginSeconds).toBeGreaterThan(values.config.shutdownTimeoutMs / 1000)
    expect(values.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } })
    expect(values.podSecurityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 })
    expect(sts).toContain('{{- toYaml .Values.securityContext | nindent 12 }}')
    expect(sts).toContain('{{- toYaml .Values.podSecurityContext | nindent 8 }}')
    // read-only root is safe: the broker's code writes no file outside the data directory (no temp files)
    for (const dir of ['src', 'engines', 'protocols']) {
      const files = readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).filter(f => f.endsWith('.ts'))
      for (const f of files) expect(readFileSync(join(root, dir, f), 'utf8'), `${dir}/${f}`).not.toMatch(/tmpdir\(|['"`]\/tmp\b|mkdtemp/)
    }
  })

  it('refuses to render a pod open to the network: auth file or an explicit allowAnonymous', () => {
    const helpers = templates.get('_helpers.tpl') ?? ''
    const check = /\{\{- define "tetra\.checkAuth" -\}\}([\s\S]*?)\{\{- end -\}\}\s*\n\s*\{\{/.exec(helpers)?.[1] ?? ''
    expect(check).toMatch(/if and \(not \(include "tetra\.authEnabled" \.\)\) \(not \.Values\.config\.allowAnonymous\)/)
    expect(check).toMatch(/fail "tetra: set auth\.existingSecret .*auth\.file .*config\.allowAnonymous=true/)
    expect(helpers).toMatch(/define "tetra\.authEnabled" -\}\}\s*\n\{\{- if or \.Values\.auth\.existingSecret \.Values\.auth\.file -\}\}true/)
    expect(templates.get('statefulset.yaml')).toMatch(/^\{\{- include "tetra\.checkAuth" \. -\}\}/)
    // the default values take the failing branch: no auth and no allowAnonymous
    const values = loadValues() as { auth: { existingSecret: string, file: string }, config: { allowAnonymous: boolean } }
    expect([values.auth.existingSecret, values.auth.file, values.config.allowAnonymous]).toEqual(['', '', false])
  })

  it('Services, Ingress, PodDisruptionBudget, Secrets and NOTES are there', () => {
    const mqtt = templates.get('service-mqtt.yaml') ?? ''
    expect(mqtt).toContain('type: {{ .Values.service.mqtt.type }}')
    expect(mqtt).toContain('.Values.service.mqtt.annotations')
    expect(mqtt).toMatch(/\{\{- if \.Values\.tls\.existingSecret \}\}\s*\n\s*- name: mqtts/)
    const http = templates.get('service-http.yaml') ?? ''
    expect(http).toContain('type: {{ .Values.service.http.type }}')
    expect(http).toContain('.Values.service.http.annotations')
    const ingress = templates.get('ingress.yaml') ?? ''
    expect(ingress).toMatch(/^\{\{- if \.Values\.ingress\.enabled \}\}/)
    expect(ingress).toMatch(/path: \/mqtt/)
    expect(templates.get('pdb.yaml')).toContain('kind: PodDisruptionBudget')
    expect(templates.get('secret.yaml')).toContain('.Values.auth.file')
    const sts = templates.get('statefulset.yaml') ?? ''
    for (const key of ['tls.crt', 'tls.key', 'ca.crt']) expect(sts).toContain(`- key: ${key}`)
    const notes = templates.get('NOTES.txt') ?? ''
    for (const what of ['Devices', 'mqtt://', 'Browsers', '/mqtt', 'Services', '/v1/']) expect(notes).toContain(what)
  })

  it('the chart README lists every value', () => {
    const readme = read('README.md')
    const leaves = leafPaths(loadValues())
    expect(leaves.length).toBeGreaterThan(80)
    const missing = (paths: string[]): string[] => paths.filter(p => !readme.includes(`\`${p}\``))
    expect(missing(leaves)).toEqual([])
    expect(missing(['config.noSuchSetting'])).toEqual(['config.noSuchSetting'])
    expect(readme).toMatch(/replica/i)
  })
})
