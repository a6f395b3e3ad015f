/**
 * docker-compose.yml: valid for docker-compose 1.29 (Debian's) and `docker compose` v2 when
 * they are installed (CI installs docker-compose; without any, the validation fails under CI
 * and is skipped elsewhere), plus the rules the deployment relies on, checked on the YAML.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { KAFKA_VERSION, REPO_ROOT } from '../../scripts/kafka-broker.mjs'

const composeFile = join(REPO_ROOT, 'docker-compose.yml')

interface Service {
  image?: string
  build?: unknown
  command?: string[] | string
  environment?: Record<string, unknown>
  volumes?: string[]
  ports?: string[]
  healthcheck?: { test: unknown }
  depends_on?: Record<string, { condition: string }>
  restart?: string
}
const compose = parse(readFileSync(composeFile, 'utf8'), { merge: true }) as {
  services: Record<string, Service>
  volumes: Record<string, unknown>
}
const services = compose.services

/** `${VAR:-default}` -> default, as compose resolves it with VAR unset. */
const defaults = (s: string) => s.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1')

function tool(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return !r.error && r.status === 0
}

const validators: Array<[string, string, string[]]> = []
if (tool('docker-compose', ['version'])) validators.push(['docker-compose (v1)', 'docker-compose', []])
if (tool('docker', ['compose', 'version'])) validators.push(['docker compose (v2)', 'docker', ['compose']])

describe('docker-compose.yml', () => {
  it('has the services of the deployment', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['clickhouse', 'grafana', 'kafka', 'kafka-init', 'teiten-sensor', 'teiten-sink'].sort(),
    )
  })

  it('pins every image (no latest, no bare name) and runs the Kafka this repo tests', () => {
    for (const [name, s] of Object.entries(services)) {
      const image = defaults(s.image ?? '')
      expect(image, name).toMatch(/^[a-z0-9./-]+:[A-Za-z0-9._-]+$/)
      expect(image, name).not.toMatch(/:latest$/)
    }
    expect(defaults(services.kafka.image!)).toBe(`apache/kafka:${KAFKA_VERSION}`)
  })

  it('long-running services have healthchecks, restart policies and ordered start-up', () => {
    for (const name of ['kafka', 'clickhouse', 'teiten-sink', 'grafana']) {
      expect(services[name].healthcheck?.test, name).toBeTruthy()
      expect(services[name].restart, name).toBe('unless-stopped')
    }
    expect(services['kafka-init'].depends_on?.kafka.condition).toBe('service_healthy')
    expect(services['teiten-sink'].depends_on?.['kafka-init'].condition).toBe('service_completed_successfully')
    expect(services['teiten-sink'].depends_on?.clickhouse.condition).toBe('service_healthy')
    expect(services['teiten-sensor'].depends_on?.['kafka-init'].condition).toBe('service_completed_successfully')
    expect(services.grafana.depends_on?.clickhouse.condition).toBe('service_healthy')
  })

  it('keeps state in named volumes and mounts the files it names', () => {
    expect(Object.keys(compose.volumes).sort()).toEqual(
      ['clickhouse-data', 'clickhouse-logs', 'grafana-data', 'kafka-data', 'teiten-sensor-state'].sort(),
    )
    for (const s of Object.values(services)) {
      for (const v of s.volumes ?? []) {
        const src = defaults(v).split(':')[0]
        if (src.startsWith('./') && src !== './spool') expect(existsSync(join(REPO_ROOT, src)), src).toBe(true)
      }
    }
    expect(services['teiten-sensor'].volumes?.some((v) => v.endsWith(':/spool:ro'))).toBe(true)
    expect(existsSync(join(REPO_ROOT, 'dashboards/grafana/provisioning/datasources/clickhouse.yaml'))).toBe(true)
    expect(existsSync(join(REPO_ROOT, 'dashboards/grafana/provisioning/dashboards/teiten.yaml'))).toBe(true)
  })

  it('the sink and the sensor run teiten against kafka:9092', () => {
    const sink = (services['teiten-sink'].command as string[]).map(defaults)
    expect(sink).toEqual(['sink', '--kafka', 'kafka:9092', '--clickhouse', 'http://teiten:teiten@clickhouse:8123'])
    const sensor = services['teiten-sensor'].command as string[]
    expect(sensor.slice(0, 4)).toEqual(['ingest', '/spool', '--kafka', 'kafka:9092'])
    expect(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')).toMatch(/^FROM node:24-slim\b/m)
  })

  it('publishes only on loopback', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) expect(defaults(p), name).toMatch(/^127\.0\.0\.1:/)
    }
  })

  it.skipIf(validators.length === 0 && !process.env.CI)('validates with docker-compose config -q', () => {
    expect(validators.length, 'neither docker-compose nor docker compose is installed').toBeGreaterThan(0)
    for (const [label, cmd, pre] of validators) {
      const r = spawnSync(cmd, [...pre, '-f', composeFile, 'config', '-q'], { encoding: 'utf8', cwd: REPO_ROOT })
      expect(`${label}: exit ${r.status} ${r.stderr ?? ''}`.trim()).toBe(`${label}: exit 0`)
    }
  })
})
