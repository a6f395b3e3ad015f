// teiten dashboard: Figure 2 of the NPA advisory (daily accesses to UDP/123 by source country),
// with drill-down by day and by source. Everything on the page is derived from the JSON API;
// the state lives in the query string so a view can be shared as a link.

const CLASSES = ['monlist', 'mode7_other', 'mode6_readvar', 'mode6_other', 'client', 'response', 'other_ntp', 'non_ntp']
const MEASURES = ['packets', 'sources', 'per_address']
const TOPS = [5, 8, 10, 15, 20]
const DEFAULTS = { measure: 'packets', top: 10, chart: 'bar', lang: 'en' }
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#76b7b2',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#2f8f9d',
  '#8cd17d',
  '#d4a6c8',
  '#86bcb6',
  '#f1ce63',
  '#a0cbe8',
  '#ffbe7d',
  '#499894',
  '#d37295',
  '#79706e',
  '#b6992d',
  '#5d6d7e',
]
const OTHER_COLOR = '#c3c9d2'
const MONLIST_COLOR = '#c0392b'
const TOKEN_KEY = 'teiten.token'

const T = {
  en: {
    title: 'Daily accesses to destination port 123/UDP by source country/region',
    subtitle: '宛先ポート 123/UDP に対する発信元国・地域別アクセス件数の推移',
    from: 'From',
    to: 'To',
    quick: 'Range',
    allRange: 'All',
    sensor: 'Sensor',
    class: 'Class',
    country: 'Country / region',
    measure: 'Measure',
    m_packets: 'Packets',
    m_sources: 'Unique sources',
    m_per_address: 'Per monitored address',
    top: 'Top',
    chart: 'Chart',
    bars: 'Bars',
    areas: 'Areas',
    reset: 'Reset',
    allSensors: 'All sensors',
    allClasses: 'All classes (monlist emphasized)',
    allCountries: 'All countries / regions',
    monlistClass: 'monlist — CVE-2013-5211',
    c_packets: 'Accesses',
    c_sources: 'Unique sources',
    c_monlist: 'monlist probes (CVE-2013-5211)',
    c_peak: 'Peak day',
    clickDay: 'Click a day for its hourly series and top sources',
    tableTitle: 'Numbers shown in the chart',
    utc: 'Hours in UTC',
    footer:
      'Counts come from the ClickHouse aggregates (daily_agg, hourly_agg, source_daily). An access is a UDP packet to port 123.',
    tokenTitle: 'Token required',
    tokenText: 'This teiten server was started with --token. Enter the token; it is kept for this browser tab only.',
    tokenOk: 'Continue',
    other: 'Other',
    unknown: 'Unknown / bogon',
    total: 'Total',
    day: 'Day',
    monlistSeries: 'monlist (CVE-2013-5211)',
    chartTitle: {
      packets: 'Accesses per day by source country/region',
      sources: 'Unique sources per day by source country/region',
      per_address: 'Packets per monitored address per day',
    },
    yName: { packets: 'packets', sources: 'sources', per_address: 'packets / address' },
    inDays: (n) => `over ${n} day${n === 1 ? '' : 's'}`,
    ofAccesses: (p) => `${p} of accesses`,
    topN: (n, c) => `Top ${n} of ${c} countries/regions, the rest as “Other”`,
    allDays: (from, to) => `${from} – ${to} (UTC)`,
    topSources: 'Top sources',
    topSourcesRange: (from, to) => `${from} – ${to}, by packets`,
    topSourcesDay: (d) => `${d}, by packets`,
    hourlyTitle: (d) => `${d} — hourly`,
    srcCols: ['Address', 'CC', 'Packets', 'Dark addr.', 'Classes'],
    noSources: 'No sources for this selection',
    noData: 'No accesses in this range',
    sourceSub: 'All-time history of accesses to port 123',
    facts: {
      country: 'Country / region',
      first_seen: 'First seen',
      last_seen: 'Last seen',
      packets: 'Packets',
      dark_addresses: 'Dark addresses hit',
      days_active: 'Days active',
      classes: 'Classes',
      sensors: 'Sensors',
      bogon: 'Bogon',
    },
    yes: 'yes',
    no: 'no',
    perAddressOff:
      'Per monitored address needs the sensors’ sizes: start <code>teiten serve --sensors sensors.yaml</code> with <code>sensors: { sensor-a: { addresses: 256 } }</code> or <code>prefixes: ["198.51.100.0/24"]</code>.',
    perAddressMissing: (list) => `Per monitored address is off: no address count for ${list} in the sensors file.`,
    perAddressOn: (src) =>
      `Per monitored address: packets ÷ addresses of the sensors that recorded data that day (from ${src}).`,
    dataRange: (from, to) => `data ${from} – ${to}`,
    noDataYet: 'no data yet',
    footerData: (kind, n) => `store: ${kind} · ${n} sensor${n === 1 ? '' : 's'}`,
    lang: '日本語',
  },
  ja: {
    title: '宛先ポート 123/UDP に対する発信元国・地域別アクセス件数の推移',
    subtitle: 'Daily accesses to destination port 123/UDP by source country/region',
    from: '開始日',
    to: '終了日',
    quick: '期間',
    allRange: '全期間',
    sensor: 'センサー',
    class: '種別',
    country: '国・地域',
    measure: '指標',
    m_packets: 'パケット数',
    m_sources: '発信元数',
    m_per_address: '監視アドレスあたり',
    top: '上位',
    chart: 'グラフ',
    bars: '棒',
    areas: '面',
    reset: 'リセット',
    allSensors: 'すべてのセンサー',
    allClasses: 'すべての種別（monlist を強調）',
    allCountries: 'すべての国・地域',
    monlistClass: 'monlist — CVE-2013-5211',
    c_packets: 'アクセス件数',
    c_sources: '発信元 IP アドレス数',
    c_monlist: 'monlist 要求 (CVE-2013-5211)',
    c_peak: '最多の日',
    clickDay: '日をクリックすると時間別推移と上位発信元を表示',
    tableTitle: 'グラフの数値',
    utc: '時刻は UTC',
    footer:
      '集計テーブル (daily_agg, hourly_agg, source_daily) による件数。アクセス＝宛先ポート 123 への UDP パケット。',
    tokenTitle: 'トークンが必要です',
    tokenText: 'このサーバーは --token 付きで起動されています。トークンを入力してください（このタブの間だけ保持）。',
    tokenOk: '続行',
    other: 'その他',
    unknown: '不明・bogon',
    total: '合計',
    day: '日付',
    monlistSeries: 'monlist (CVE-2013-5211)',
    chartTitle: {
      packets: '発信元国・地域別アクセス件数（日別）',
      sources: '発信元国・地域別の発信元数（日別）',
      per_address: '監視アドレスあたりのパケット数（日別）',
    },
    yName: { packets: '件数', sources: '発信元数', per_address: '件数／アドレス' },
    inDays: (n) => `${n} 日間`,
    ofAccesses: (p) => `アクセスの ${p}`,
    topN: (n, c) => `${c} の国・地域のうち上位 ${n}、残りは「その他」`,
    allDays: (from, to) => `${from} 〜 ${to}（UTC）`,
    topSources: '上位の発信元',
    topSourcesRange: (from, to) => `${from} 〜 ${to}、パケット数順`,
    topSourcesDay: (d) => `${d}、パケット数順`,
    hourlyTitle: (d) => `${d} の時間別推移`,
    srcCols: ['アドレス', '国', '件数', '宛先数', '種別'],
    noSources: '該当する発信元はありません',
    noData: 'この期間のアクセスはありません',
    sourceSub: '宛先ポート 123 へのアクセスの全履歴',
    facts: {
      country: '国・地域',
      first_seen: '初観測',
      last_seen: '最終観測',
      packets: 'パケット数',
      dark_addresses: '宛先（ダーク）アドレス数',
      days_active: '観測日数',
      classes: '種別',
      sensors: 'センサー',
      bogon: 'bogon',
    },
    yes: 'はい',
    no: 'いいえ',
    perAddressOff:
      '監視アドレスあたりの件数にはセンサーの規模が必要です：<code>teiten serve --sensors sensors.yaml</code>（<code>sensors: { sensor-a: { addresses: 256 } }</code> または <code>prefixes: ["198.51.100.0/24"]</code>）で起動してください。',
    perAddressMissing: (list) => `監視アドレスあたりは無効：センサーファイルに ${list} のアドレス数がありません。`,
    perAddressOn: (src) => `監視アドレスあたり：その日にデータのあるセンサーのアドレス数で割った値（${src}）。`,
    dataRange: (from, to) => `データ ${from} 〜 ${to}`,
    noDataYet: 'データなし',
    footerData: (kind, n) => `ストア: ${kind} · センサー ${n}`,
    lang: 'English',
  },
}

// ---------------------------------------------------------------------------------------------
// State and URL

const state = {
  from: '',
  to: '',
  sensor: '',
  class: '',
  country: '',
  measure: DEFAULTS.measure,
  top: DEFAULTS.top,
  chart: DEFAULTS.chart,
  lang: DEFAULTS.lang,
  day: '',
  src: '',
}

const isDay = (s) => /^\d{4}-\d{2}-\d{2}$/.test(s)

function readState() {
  const p = new URLSearchParams(location.search)
  const pick = (k, ok, fallback) => {
    const v = p.get(k)
    return v !== null && ok(v) ? v : fallback
  }
  state.from = pick('from', isDay, '')
  state.to = pick('to', isDay, '')
  state.sensor = pick('sensor', (v) => v.length > 0 && v.length <= 128, '')
  state.class = pick('class', (v) => CLASSES.includes(v), '')
  state.country = pick('country', (v) => /^([A-Z]{2}|--)$/.test(v), '')
  state.measure = pick('measure', (v) => MEASURES.includes(v), DEFAULTS.measure)
  state.top = Number(pick('top', (v) => TOPS.includes(Number(v)), String(DEFAULTS.top)))
  state.chart = pick('chart', (v) => v === 'bar' || v === 'area', DEFAULTS.chart)
  state.lang = pick('lang', (v) => v === 'en' || v === 'ja', navigator.language?.startsWith('ja') ? 'ja' : 'en')
  state.day = pick('day', isDay, '')
  state.src = pick('src', (v) => v.length <= 64 && /^[0-9a-fA-F:.]+$/.test(v), '')
}

function stateQuery() {
  const p = new URLSearchParams()
  for (const k of ['from', 'to', 'sensor', 'class', 'country']) if (state[k]) p.set(k, state[k])
  if (state.measure !== DEFAULTS.measure) p.set('measure', state.measure)
  if (state.top !== DEFAULTS.top) p.set('top', String(state.top))
  if (state.chart !== DEFAULTS.chart) p.set('chart', state.chart)
  p.set('lang', state.lang)
  if (state.day) p.set('day', state.day)
  if (state.src) p.set('src', state.src)
  return p.toString()
}

function writeState(push = true) {
  const url = `${location.pathname}?${stateQuery()}`
  if (url === `${location.pathname}${location.search}`) return
  if (push) history.pushState(null, '', url)
  else history.replaceState(null, '', url)
}

// ---------------------------------------------------------------------------------------------
// API

const $ = (id) => document.getElementById(id)
let pending = 0

function busy(delta) {
  pending += delta
  $('progress').hidden = pending === 0
  window.__teiten.idle = pending === 0
}

function takeTokenFromUrl() {
  const url = new URL(location.href)
  const token = url.searchParams.get('token')
  if (token === null) return
  sessionStorage.setItem(TOKEN_KEY, token)
  url.searchParams.delete('token')
  // The token must not stay in the address bar, the history or a shared link.
  history.replaceState(null, '', url.pathname + (url.search ? url.search : ''))
}

function askToken() {
  return new Promise((resolve) => {
    const dialog = $('auth')
    const input = $('auth-token')
    input.value = ''
    dialog.addEventListener(
      'close',
      () => {
        if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value)
        resolve()
      },
      { once: true },
    )
    dialog.showModal()
  })
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

async function api(path, params = {}) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  if (params.by === '') q.set('by', '')
  const url = q.toString() ? `${path}?${q}` : path
  busy(1)
  try {
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY)
      const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })
      if (res.status === 401) {
        await askToken()
        continue
      }
      if (!res.ok) {
        const body = await res.json().catch(() => ({}))
        throw new ApiError(res.status, body?.error?.code ?? 'HTTP', body?.error?.message ?? res.statusText)
      }
      return res.json()
    }
  } finally {
    busy(-1)
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting

const t = () => T[state.lang]
let regionNames = null
function countryName(code) {
  if (code === 'other') return t().other
  if (code === '--') return t().unknown
  try {
    regionNames ??= new Intl.DisplayNames([state.lang], { type: 'region' })
    return regionNames.of(code) ?? code
  } catch {
    return code
  }
}
const seriesLabel = (code) =>
  code === 'other' ? t().other : code === '--' ? `-- ${t().unknown}` : `${code} ${countryName(code)}`

function fmt(v, measure = state.measure) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—'
  if (measure === 'per_address') {
    if (v === 0) return '0'
    return v >= 100 ? v.toLocaleString(state.lang, { maximumFractionDigits: 1 }) : v.toPrecision(3)
  }
  return Math.round(v).toLocaleString(state.lang)
}

const pct = (a, b) => (b > 0 ? `${((100 * a) / b).toLocaleString(state.lang, { maximumFractionDigits: 1 })}%` : '—')
const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])

function daysBetween(from, to) {
  const out = []
  for (let d = Date.parse(`${from}T00:00:00Z`); d <= Date.parse(`${to}T00:00:00Z`); d += 86_400_000) {
    out.push(new Date(d).toISOString().slice(0, 10))
  }
  return out
}
/** ISO days compare as text. */
const laterDay = (a, b) => [a, b].sort()[1]
const addDays = (day, n) => new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10)
const fmtTs = (iso) => (iso ? iso.replace('T', ' ').replace(/\.(\d{3})\d*Z$/, '.$1Z') : '—')

// ---------------------------------------------------------------------------------------------
// Data

let meta = null
let view = null
let mainChart = null
let hourlyChart = null
let sourceChart = null
let loadSeq = 0

function filterParams() {
  return { from: state.from, to: state.to, sensor: state.sensor, class: state.class, country: state.country }
}

/** Monitored addresses per day: the configured sensors that recorded anything that day. */
function coverageByDay(rows) {
  const sensors = meta.sensorsConfig.sensors ?? {}
  const byDay = new Map()
  const missing = new Set()
  for (const r of rows) {
    const info = sensors[r.sensor]
    if (!info) {
      missing.add(r.sensor)
      continue
    }
    byDay.set(r.day, (byDay.get(r.day) ?? 0) + info.addresses)
  }
  return { byDay, missing: [...missing].sort() }
}

function perAddressAvailability(coverage) {
  if (!meta.sensorsConfig.configured) return { ok: false, hint: t().perAddressOff }
  if (coverage && coverage.missing.length > 0)
    return { ok: false, hint: t().perAddressMissing(coverage.missing.join(', ')) }
  return { ok: true, hint: t().perAddressOn(esc(meta.sensorsConfig.source)) }
}

async function loadMain() {
  const seq = ++loadSeq
  const f = filterParams()
  const wantMonlist = state.class === ''
  const [rows, totalsRows, dayTotals, monlistRows, coverageRows] = await Promise.all([
    api('/api/daily', { ...f, by: 'day,country' }),
    api('/api/daily', { ...f, by: '' }),
    api('/api/daily', { ...f, by: 'day' }),
    wantMonlist ? api('/api/daily', { ...f, class: 'monlist', by: 'day' }) : Promise.resolve(null),
    meta.sensorsConfig.configured
      ? api('/api/daily', { from: state.from, to: state.to, sensor: state.sensor, by: 'day,sensor', all: '1' })
      : Promise.resolve(null),
  ])
  if (seq !== loadSeq) return false
  view = buildView(rows, totalsRows[0] ?? { packets: 0, sources: 0 }, dayTotals, monlistRows, coverageRows)
  return true
}

function buildView(rows, totals, dayTotals, monlistRows, coverageRows) {
  const days = daysBetween(state.from, state.to)
  const rank = new Map()
  for (const r of rows) rank.set(r.country, (rank.get(r.country) ?? 0) + r.packets)
  const ranked = [...rank.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([c]) => c)
  const top = ranked.slice(0, state.top)
  const hasOther = ranked.length > top.length
  const keys = hasOther ? [...top, 'other'] : top
  const index = new Map(days.map((d, i) => [d, i]))
  const zero = () => days.map(() => 0)
  const packets = Object.fromEntries(keys.map((k) => [k, zero()]))
  const sources = Object.fromEntries(keys.map((k) => [k, zero()]))
  for (const r of rows) {
    const i = index.get(r.day)
    if (i === undefined) continue
    const k = top.includes(r.country) ? r.country : 'other'
    packets[k][i] += r.packets
    sources[k][i] += r.sources
  }
  const totalPackets = zero()
  const totalSources = zero()
  for (const r of dayTotals) {
    const i = index.get(r.day)
    if (i === undefined) continue
    totalPackets[i] = r.packets
    totalSources[i] = r.sources
  }
  let monlist = null
  if (monlistRows) {
    monlist = { packets: zero(), sources: zero() }
    for (const r of monlistRows) {
      const i = index.get(r.day)
      if (i === undefined) continue
      monlist.packets[i] = r.packets
      monlist.sources[i] = r.sources
    }
  }
  const coverage = coverageRows ? coverageByDay(coverageRows) : null
  const addresses = days.map((d) => coverage?.byDay.get(d) ?? null)
  return { days, keys, ranked, packets, sources, totals, totalPackets, totalSources, monlist, coverage, addresses }
}

/** The numbers of the selected measure: exactly what the chart and the table show. */
function measureSeries(kind) {
  const v = view
  const perAddress = (arr) => arr.map((x, i) => (v.addresses[i] ? x / v.addresses[i] : null))
  if (kind === 'total') {
    if (state.measure === 'sources') return v.totalSources
    return state.measure === 'per_address' ? perAddress(v.totalPackets) : v.totalPackets
  }
  if (kind === 'monlist') {
    if (!v.monlist) return null
    if (state.measure === 'sources') return v.monlist.sources
    return state.measure === 'per_address' ? perAddress(v.monlist.packets) : v.monlist.packets
  }
  if (state.measure === 'sources') return v.sources[kind]
  return state.measure === 'per_address' ? perAddress(v.packets[kind]) : v.packets[kind]
}

const colorOf = (key, i) => (key === 'other' ? OTHER_COLOR : PALETTE[i % PALETTE.length])

// ---------------------------------------------------------------------------------------------
// Rendering

function applyI18n() {
  document.documentElement.lang = state.lang
  for (const el of document.querySelectorAll('[data-i18n]')) {
    const text = t()[el.dataset.i18n]
    if (typeof text === 'string') el.textContent = text
  }
  $('title').textContent = t().title
  $('subtitle').textContent = t().subtitle
  $('subtitle').lang = state.lang === 'en' ? 'ja' : 'en'
  $('lang').textContent = t().lang
  document.title = `teiten — ${t().title}`
  regionNames = null
}

function fillSelect(select, options, value) {
  select.replaceChildren(
    ...options.map(([v, label, cls]) => {
      const o = document.createElement('option')
      o.value = v
      o.textContent = label
      if (cls) o.className = cls
      return o
    }),
  )
  select.value = value
}

function renderControls() {
  $('f-from').value = state.from
  $('f-to').value = state.to
  if (meta.range) {
    $('f-from').min = meta.range.from
    $('f-to').max = meta.range.to
  }
  const sensors = meta.sensors.map((s) => s.sensor)
  if (state.sensor && !sensors.includes(state.sensor)) sensors.push(state.sensor)
  fillSelect($('f-sensor'), [['', t().allSensors], ...sensors.map((s) => [s, s])], state.sensor)
  fillSelect(
    $('f-class'),
    [['', t().allClasses], ['monlist', t().monlistClass, 'monlist'], ...CLASSES.slice(1).map((c) => [c, c])],
    state.class,
  )
  const countries = meta.countries.map((c) => c.country)
  if (state.country && !countries.includes(state.country)) countries.push(state.country)
  fillSelect(
    $('f-country'),
    [
      ['', t().allCountries],
      ...countries.map((c) => [c, c === '--' ? `-- ${t().unknown}` : `${c} — ${countryName(c)}`]),
    ],
    state.country,
  )
  $('f-top').value = String(state.top)
  for (const b of $('f-measure').querySelectorAll('button'))
    b.setAttribute('aria-checked', String(b.dataset.value === state.measure))
  for (const b of $('f-chart').querySelectorAll('button'))
    b.setAttribute('aria-checked', String(b.dataset.value === state.chart))
  const avail = perAddressAvailability(view?.coverage)
  const perButton = $('f-measure').querySelector('[data-value="per_address"]')
  perButton.disabled = !avail.ok
  perButton.title = avail.ok ? '' : avail.hint.replace(/<[^>]+>/g, '')
  $('measure-hint').hidden = false
  $('measure-hint').innerHTML = avail.hint
  if (meta.range) {
    $('data-range').hidden = false
    $('data-range').textContent = t().dataRange(meta.range.from, meta.range.to)
  } else {
    $('data-range').hidden = false
    $('data-range').textContent = t().noDataYet
  }
  $('footer-data').textContent = t().footerData(meta.store, meta.sensors.length)
}

function axisTooltip(params) {
  if (!params.length) return ''
  const rows = params
    .filter((p) => p.value !== 0 && p.value !== null && p.value !== undefined)
    .sort((a, b) => (b.seriesId === 'monlist') - (a.seriesId === 'monlist') || b.value - a.value)
    .map(
      (p) =>
        `<tr><td>${p.marker}${esc(p.seriesName)}</td><td style="text-align:right;padding-left:12px;font-variant-numeric:tabular-nums">${fmt(p.value)}</td></tr>`,
    )
  return `<b>${esc(params[0].axisValue)}</b><table>${rows.join('')}</table>`
}

function stackedSeries(keys, valuesOf, markDay) {
  const area = state.chart === 'area'
  return keys.map((k, i) => ({
    id: k,
    name: seriesLabel(k),
    type: area ? 'line' : 'bar',
    stack: 'countries',
    data: valuesOf(k),
    color: colorOf(k, i),
    barMaxWidth: 48,
    symbol: 'none',
    smooth: false,
    areaStyle: area ? { opacity: 0.85 } : undefined,
    lineStyle: area ? { width: 1 } : undefined,
    emphasis: { focus: 'series' },
    markArea:
      i === 0 && markDay
        ? {
            silent: true,
            itemStyle: { color: 'rgba(255, 196, 0, 0.18)' },
            data: [[{ xAxis: markDay }, { xAxis: markDay }]],
          }
        : undefined,
  }))
}

function renderChart() {
  const v = view
  const monlist = measureSeries('monlist')
  const series = stackedSeries(
    v.keys,
    (k) => measureSeries(k),
    state.day && v.days.includes(state.day) ? state.day : null,
  )
  if (monlist) {
    series.push({
      id: 'monlist',
      name: t().monlistSeries,
      type: 'line',
      data: monlist,
      color: MONLIST_COLOR,
      z: 10,
      symbol: 'circle',
      symbolSize: 5,
      lineStyle: { width: 2, type: 'dashed' },
      emphasis: { focus: 'series' },
    })
  }
  mainChart.setOption(
    {
      animationDuration: 250,
      textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
      // The monlist line first: it is what the advisory is about.
      legend: {
        top: 0,
        left: 0,
        right: 0,
        itemWidth: 12,
        itemHeight: 10,
        itemGap: 12,
        textStyle: { fontSize: 12 },
        data: [...(monlist ? [t().monlistSeries] : []), ...series.filter((s) => s.id !== 'monlist').map((s) => s.name)],
      },
      grid: {
        left: 8,
        right: 16,
        top: series.length > 8 ? 78 : 54,
        bottom: v.days.length > 31 ? 56 : 24,
        containLabel: true,
      },
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: axisTooltip, confine: true },
      xAxis: {
        type: 'category',
        data: v.days,
        axisTick: { alignWithLabel: true },
        axisLabel: { formatter: (d) => d.slice(5).replace('-', '/'), hideOverlap: true },
      },
      yAxis: {
        type: 'value',
        name: t().yName[state.measure],
        nameGap: 12,
        nameTextStyle: { align: 'left', color: '#8a94a3', fontSize: 11 },
        axisLabel: {
          formatter: (x) => (state.measure === 'per_address' ? String(x) : Number(x).toLocaleString(state.lang)),
        },
        splitLine: { lineStyle: { color: '#edf0f4' } },
      },
      dataZoom: v.days.length > 31 ? [{ type: 'inside' }, { type: 'slider', height: 18, bottom: 8 }] : [],
      series,
    },
    { notMerge: true },
  )
  $('chart-title').textContent = t().chartTitle[state.measure]
  const extras = []
  if (state.sensor) extras.push(`${t().sensor}: ${state.sensor}`)
  if (state.class) extras.push(`${t().class}: ${state.class}`)
  if (state.country) extras.push(`${t().country}: ${state.country}`)
  $('chart-sub').textContent = [t().allDays(state.from, state.to), ...extras].join(' · ')
}

/** The table: one row per day, one column per series, the totals, and monlist when shown. */
function tableModel() {
  const v = view
  const columns = [...v.keys]
  const values = Object.fromEntries(columns.map((k) => [k, measureSeries(k)]))
  const total = measureSeries('total')
  const monlist = measureSeries('monlist')
  const rows = v.days.map((day, i) => {
    const row = { day }
    for (const k of columns) row[k] = values[k][i]
    row.total = total[i]
    if (monlist) row.monlist = monlist[i]
    return row
  })
  return { columns, rows, hasMonlist: Boolean(monlist) }
}

function renderTable() {
  const { columns, rows, hasMonlist } = tableModel()
  const head = [
    `<th>${t().day}</th>`,
    ...columns.map(
      (k, i) =>
        `<th title="${esc(countryName(k))}"><span class="swatch" style="background:${colorOf(k, i)}"></span>${esc(k === 'other' ? t().other : k)}</th>`,
    ),
    `<th class="total">${t().total}</th>`,
    hasMonlist ? `<th class="monlist">monlist</th>` : '',
  ].join('')
  const body = rows
    .map(
      (r) =>
        `<tr data-day="${r.day}"${r.day === state.day ? ' class="selected"' : ''}><th>${r.day}</th>${columns
          .map((k) => `<td>${fmt(r[k])}</td>`)
          .join(
            '',
          )}<td class="total">${fmt(r.total)}</td>${hasMonlist ? `<td class="monlist">${fmt(r.monlist)}</td>` : ''}</tr>`,
    )
    .join('')
  // Sums over days: meaningful for packets; a source active on several days counts once a day.
  let foot = ''
  if (state.measure === 'packets') {
    const sum = (k) => rows.reduce((a, r) => a + (r[k] ?? 0), 0)
    foot = `<tfoot><tr><th>${t().total}</th>${columns.map((k) => `<td>${fmt(sum(k))}</td>`).join('')}<td class="total">${fmt(sum('total'))}</td>${hasMonlist ? `<td class="monlist">${fmt(sum('monlist'))}</td>` : ''}</tr></tfoot>`
  }
  $('table').innerHTML =
    `<thead><tr>${head}</tr></thead><tbody>${body || `<tr><td class="empty" colspan="${columns.length + 3}">${t().noData}</td></tr>`}</tbody>${foot}`
  const ranked = view.ranked.length
  $('table-sub').textContent =
    `${t().chartTitle[state.measure]} · ${ranked > state.top ? t().topN(state.top, ranked) : t().allDays(state.from, state.to)}`
}

function renderCards() {
  const v = view
  const totalPackets = v.totals.packets
  $('k-packets').textContent = fmt(totalPackets, 'packets')
  $('k-packets-sub').textContent = t().inDays(v.days.length)
  $('k-sources').textContent = fmt(v.totals.sources, 'sources')
  $('k-sources-sub').textContent = t().allDays(state.from, state.to)
  const monlistPackets = v.monlist
    ? v.monlist.packets.reduce((a, b) => a + b, 0)
    : state.class === 'monlist'
      ? totalPackets
      : null
  $('k-monlist').textContent = monlistPackets === null ? '—' : fmt(monlistPackets, 'packets')
  $('k-monlist-sub').textContent =
    monlistPackets === null ? `${t().class}: ${state.class}` : t().ofAccesses(pct(monlistPackets, totalPackets))
  const total = measureSeries('total')
  let peak = -1
  total.forEach((x, i) => {
    if (x !== null && x > 0 && (peak < 0 || x > total[peak])) peak = i
  })
  $('k-peak').textContent = peak < 0 ? '—' : v.days[peak]
  $('k-peak-sub').textContent = peak < 0 ? '' : `${fmt(total[peak])} ${t().yName[state.measure]}`
}

function renderSourcesTable(rows, title, sub) {
  $('sources-title').textContent = title
  $('sources-sub').textContent = sub
  const [cAddr, cCc, cPk, cDark, cCls] = t().srcCols
  const head = `<thead><tr><th>${cAddr}</th><th>${cCc}</th><th>${cPk}</th><th>${cDark}</th><th>${cCls}</th></tr></thead>`
  const body = rows
    .map(
      (r) =>
        `<tr data-src="${esc(r.address)}"${r.address === state.src ? ' class="selected"' : ''}><td class="addr" title="${esc(r.address)}">${esc(r.address)}${r.bogon ? '<span class="badge">bogon</span>' : ''}</td><td class="cc" title="${esc(countryName(r.country))}">${esc(r.country)}</td><td>${fmt(r.packets, 'packets')}</td><td>${fmt(r.dark_addresses, 'packets')}</td><td class="cls" title="${esc(r.classes.join(', '))}">${r.classes
          .slice(0, 1)
          .map((c) => `<span class="chip${c === 'monlist' ? ' monlist' : ''}">${esc(c)}</span>`)
          .join('')}${r.classes.length > 1 ? `<span class="chip">+${r.classes.length - 1}</span>` : ''}</td></tr>`,
    )
    .join('')
  $('sources').innerHTML =
    `${head}<tbody>${body || `<tr><td class="empty" colspan="5">${t().noSources}</td></tr>`}</tbody>`
}

async function loadSources() {
  const f = filterParams()
  const day = state.day
  const rows = await api('/api/sources', day ? { ...f, from: day, to: day, limit: 15 } : { ...f, limit: 15 })
  window.__teiten.sources = rows
  renderSourcesTable(rows, t().topSources, day ? t().topSourcesDay(day) : t().topSourcesRange(state.from, state.to))
}

async function loadDay() {
  if (!state.day) {
    $('day-panel').hidden = true
    window.__teiten.hourly = null
    return
  }
  const rows = await api('/api/hourly', {
    day: state.day,
    by: 'hour,country',
    sensor: state.sensor,
    class: state.class,
    country: state.country,
  })
  window.__teiten.hourly = rows
  $('day-panel').hidden = false
  $('day-title').textContent = t().hourlyTitle(state.day)
  const hours = Array.from({ length: 24 }, (_, h) => `${String(h).padStart(2, '0')}:00`)
  // The day's countries are among the range's: the same top N and "Other" as the main chart.
  const keys = view.keys
  const packets = Object.fromEntries(keys.map((k) => [k, hours.map(() => 0)]))
  const sources = Object.fromEntries(keys.map((k) => [k, hours.map(() => 0)]))
  for (const r of rows) {
    const h = new Date(r.hour).getUTCHours()
    const k = packets[r.country] && r.country !== 'other' ? r.country : 'other'
    if (!packets[k]) continue
    packets[k][h] += r.packets
    sources[k][h] += r.sources
  }
  const dayIndex = view.days.indexOf(state.day)
  const addr = dayIndex >= 0 ? view.addresses[dayIndex] : null
  const valuesOf = (k) => {
    if (state.measure === 'sources') return sources[k]
    if (state.measure === 'per_address') return packets[k].map((x) => (addr ? x / addr : null))
    return packets[k]
  }
  hourlyChart.setOption(
    {
      animationDuration: 200,
      grid: { left: 8, right: 12, top: 14, bottom: 8, containLabel: true },
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: axisTooltip, confine: true },
      xAxis: { type: 'category', data: hours, axisLabel: { interval: 2, formatter: (h) => h.slice(0, 2) } },
      yAxis: { type: 'value', splitLine: { lineStyle: { color: '#edf0f4' } } },
      series: stackedSeries(keys, valuesOf, null).map((s) => ({ ...s, type: 'bar', areaStyle: undefined })),
    },
    { notMerge: true },
  )
  hourlyChart.resize()
}

async function loadSource() {
  if (!state.src) {
    $('source-panel').hidden = true
    window.__teiten.source = null
    return
  }
  let h
  try {
    h = await api(`/api/source/${encodeURIComponent(state.src)}`)
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      showBanner(err.message)
      $('source-panel').hidden = true
      return
    }
    throw err
  }
  window.__teiten.source = h
  $('source-panel').hidden = false
  $('source-title').innerHTML = `${esc(h.address)}${h.totals.bogon ? '<span class="badge">bogon</span>' : ''}`
  $('source-sub').textContent = t().sourceSub
  const f = t().facts
  const facts = [
    [f.country, h.totals.countries.map((c) => `${c} ${countryName(c)}`).join(', ')],
    [f.first_seen, fmtTs(h.totals.first_seen)],
    [f.last_seen, fmtTs(h.totals.last_seen)],
    [f.packets, fmt(h.totals.packets, 'packets')],
    [f.dark_addresses, fmt(h.totals.dark_addresses, 'packets')],
    [f.days_active, fmt(h.totals.days_active, 'packets')],
    [f.classes, h.totals.classes.join(', ')],
    [f.sensors, h.totals.sensors.join(', ')],
    [f.bogon, h.totals.bogon ? t().yes : t().no],
  ]
  $('source-facts').innerHTML = facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')
  sourceChart.setOption(
    {
      animationDuration: 200,
      grid: { left: 8, right: 12, top: 12, bottom: 8, containLabel: true },
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
      xAxis: {
        type: 'category',
        data: h.days.map((d) => d.day),
        axisLabel: { formatter: (d) => d.slice(5), hideOverlap: true },
      },
      yAxis: { type: 'value', splitLine: { lineStyle: { color: '#edf0f4' } } },
      series: [
        {
          id: 'packets',
          name: t().facts.packets,
          type: 'bar',
          data: h.days.map((d) => d.packets),
          color: '#4e79a7',
          barMaxWidth: 24,
        },
      ],
    },
    { notMerge: true },
  )
  sourceChart.resize()
}

function showBanner(message) {
  $('banner').hidden = !message
  $('banner').textContent = message ?? ''
}

// ---------------------------------------------------------------------------------------------
// Flow

function defaultRange() {
  if (!meta.range) {
    const today = new Date().toISOString().slice(0, 10)
    return { from: addDays(today, -29), to: today }
  }
  // The last 90 days of data: a season of scanning, still readable as daily bars.
  return { from: laterDay(addDays(meta.range.to, -89), meta.range.from), to: meta.range.to }
}

function normalizeState() {
  if (!state.from || !state.to) {
    const r = defaultRange()
    state.from ||= r.from
    state.to ||= r.to
  }
  if (state.from > state.to) [state.from, state.to] = [state.to, state.from]
  if (state.day && (state.day < state.from || state.day > state.to)) state.day = ''
}

async function refresh({ push = true, reloadMain = true } = {}) {
  normalizeState()
  writeState(push)
  showBanner('')
  try {
    if (reloadMain && !(await loadMain())) return
    if (state.measure === 'per_address' && !perAddressAvailability(view.coverage).ok) state.measure = 'packets'
    writeState(false)
    renderControls()
    renderChart()
    renderTable()
    renderCards()
    await Promise.all([loadDay(), loadSources(), loadSource()])
    window.__teiten.renders++
  } catch (err) {
    showBanner(err instanceof ApiError ? `${err.message} [${err.code}]` : String(err?.message ?? err))
  }
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const a = document.createElement('a')
  a.href = url
  a.download = name
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

function exportName(ext) {
  const parts = ['teiten', state.measure, state.from, state.to]
  if (state.sensor) parts.push(state.sensor)
  if (state.class) parts.push(state.class)
  if (state.country) parts.push(state.country)
  return `${parts.join('_').replace(/[^A-Za-z0-9_.-]/g, '-')}.${ext}`
}

function tableCsv() {
  const { columns, rows, hasMonlist } = tableModel()
  const cols = ['day', ...columns, 'total', ...(hasMonlist ? ['monlist'] : [])]
  const cell = (v) => (v === null || v === undefined ? '' : String(v))
  return `${[cols.join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\n')}\n`
}

function wire() {
  const set = (patch, opts) => {
    Object.assign(state, patch)
    return refresh(opts)
  }
  $('f-from').addEventListener('change', (e) => isDay(e.target.value) && set({ from: e.target.value }))
  $('f-to').addEventListener('change', (e) => isDay(e.target.value) && set({ to: e.target.value }))
  $('f-sensor').addEventListener('change', (e) => set({ sensor: e.target.value }))
  $('f-class').addEventListener('change', (e) => set({ class: e.target.value }))
  $('f-country').addEventListener('change', (e) => set({ country: e.target.value }))
  $('f-top').addEventListener('change', (e) => set({ top: Number(e.target.value) }))
  $('f-measure').addEventListener('click', (e) => {
    const b = e.target.closest('button')
    if (b && !b.disabled && b.dataset.value !== state.measure) set({ measure: b.dataset.value }, { reloadMain: false })
  })
  $('f-chart').addEventListener('click', (e) => {
    const b = e.target.closest('button')
    if (b && b.dataset.value !== state.chart) set({ chart: b.dataset.value }, { reloadMain: false })
  })
  $('quick-ranges').addEventListener('click', (e) => {
    const b = e.target.closest('button')
    if (!b || !meta.range) return
    const to = meta.range.to
    const from = b.dataset.days === 'all' ? meta.range.from : addDays(to, -(Number(b.dataset.days) - 1))
    set({ from: laterDay(from, meta.range.from), to })
  })
  $('reset').addEventListener('click', () => {
    const r = defaultRange()
    set({
      ...r,
      sensor: '',
      class: '',
      country: '',
      measure: DEFAULTS.measure,
      top: DEFAULTS.top,
      chart: DEFAULTS.chart,
      day: '',
      src: '',
    })
  })
  $('lang').addEventListener('click', () => {
    state.lang = state.lang === 'en' ? 'ja' : 'en'
    applyI18n()
    refresh({ reloadMain: false })
  })
  $('day-close').addEventListener('click', () => set({ day: '' }, { reloadMain: false }))
  $('source-close').addEventListener('click', () => set({ src: '' }, { reloadMain: false }))
  $('table').addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-day]')
    if (tr) selectDay(tr.dataset.day)
  })
  $('sources').addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-src]')
    if (tr) set({ src: tr.dataset.src }, { reloadMain: false })
  })
  $('dl-csv').addEventListener('click', () => download(exportName('csv'), 'text/csv', tableCsv()))
  $('dl-json').addEventListener('click', () =>
    download(exportName('json'), 'application/json', `${JSON.stringify(tableModel().rows, null, 1)}\n`),
  )
  // A click anywhere in a day's column selects the day, not only on its bar.
  mainChart.getZr().on('click', (e) => {
    const point = [e.offsetX, e.offsetY]
    if (!view || !mainChart.containPixel('grid', point)) return
    const [i] = mainChart.convertFromPixel({ gridIndex: 0 }, point) ?? []
    if (Number.isInteger(i) && view.days[i]) selectDay(view.days[i])
  })
  window.addEventListener('popstate', () => {
    readState()
    applyI18n()
    refresh({ push: false })
  })
  window.addEventListener('resize', () => {
    for (const c of [mainChart, hourlyChart, sourceChart]) c.resize()
  })
  function selectDay(day) {
    set({ day: state.day === day ? '' : day }, { reloadMain: false })
  }
}

function plainOption(chart) {
  const o = chart.getOption()
  return {
    xAxis: (o.xAxis?.[0]?.data ?? []).slice(),
    series: (o.series ?? []).map((s) => ({
      id: s.id,
      name: s.name,
      type: s.type,
      stack: s.stack ?? null,
      data: [...(s.data ?? [])],
    })),
  }
}

window.__teiten = {
  idle: false,
  renders: 0,
  chartOption: () => plainOption(mainChart),
  hourlyOption: () => plainOption(hourlyChart),
  sourceOption: () => plainOption(sourceChart),
  table: () => tableModel(),
  state: () => ({ ...state }),
}

async function start() {
  takeTokenFromUrl()
  readState()
  applyI18n()
  const echarts = window.echarts
  mainChart = echarts.init($('chart'))
  hourlyChart = echarts.init($('hourly-chart'))
  sourceChart = echarts.init($('source-chart'))
  wire()
  try {
    meta = await api('/api/meta')
  } catch (err) {
    showBanner(err instanceof ApiError ? `${err.message} [${err.code}]` : String(err?.message ?? err))
    return
  }
  await refresh({ push: false })
}

start()
