import { basename } from 'node:path'
import type { Logger } from '../core/logger.js'
import type { Store } from '../store/store.js'
import { ADVISORY_SUBTITLE, DEFAULT_CHART_SIZE, renderTrendSvg, trendTitle } from './chart.js'
import { renderCsv } from './csv.js'
import type { Day } from './days.js'
import { type ReportPaths, reportPaths, writeFileAtomic } from './files.js'
import { renderHtml } from './html.js'
import { renderMarkdown } from './markdown.js'
import { DEFAULT_REPORT_OPTIONS, loadReportModel, type ReportModel, type ReportOptions } from './model.js'
import { PNG_FONT_FAMILY, svgToPng } from './png.js'

export interface GenerateReportOptions {
  store: Store
  day: Day
  outDir: string
  logger: Logger
  now: () => Date
  options?: ReportOptions
}

const HTML_FONTS = `system-ui, "Hiragino Sans", "Noto Sans JP", "Yu Gothic", sans-serif`

export interface RenderedReport {
  csv: string
  png: Buffer
  html: string
  md: string
}

/** All four files in memory; nothing touches the disk. */
export function renderReport(model: ReportModel, pngName: string): RenderedReport {
  const chart = { ...DEFAULT_CHART_SIZE, title: trendTitle(model.trend), subtitle: ADVISORY_SUBTITLE }
  const png = svgToPng(renderTrendSvg(model.trend, { ...chart, fontFamily: PNG_FONT_FAMILY })).png
  const svg = renderTrendSvg(model.trend, { ...chart, fontFamily: HTML_FONTS })
  return { csv: renderCsv(model), png, html: renderHtml(model, svg), md: renderMarkdown(model, pngName) }
}

/**
 * Writes teiten-report-DAY.{csv,png,html,md} into outDir, each atomically, the Markdown last.
 * Rendering happens before the first write, so a failed query or render leaves no file.
 */
export async function generateReport(o: GenerateReportOptions): Promise<{ paths: ReportPaths; model: ReportModel }> {
  const started = performance.now()
  const model = await loadReportModel(o.store, o.day, o.now, o.options ?? DEFAULT_REPORT_OPTIONS)
  const paths = reportPaths(o.outDir, o.day)
  const rendered = renderReport(model, basename(paths.png))
  writeFileAtomic(paths.csv, rendered.csv)
  writeFileAtomic(paths.png, rendered.png)
  writeFileAtomic(paths.html, rendered.html)
  writeFileAtomic(paths.md, rendered.md)
  o.logger.info(
    {
      day: o.day,
      outDir: o.outDir,
      accesses: model.headline.accesses,
      surges: model.surges.length,
      ms: Math.round(performance.now() - started),
    },
    'report written',
  )
  return { paths, model }
}
