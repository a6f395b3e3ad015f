import { createRequire } from 'node:module'
import { Resvg } from '@resvg/resvg-js'
import { TeitenError } from '../core/errors.js'

/**
 * SVG to PNG without a browser. Text needs a font the process can always load: a bare server
 * or a slim container has none, so the font ships as an npm dependency (Noto Sans JP, which
 * covers Latin and the Japanese subtitle) and system fonts are never consulted; the PNG
 * then looks the same on every machine.
 */
export const PNG_FONT_FAMILY = 'Noto Sans JP'
const FONT_MODULE = '@expo-google-fonts/noto-sans-jp/400Regular/NotoSansJP_400Regular.ttf'

let fontPath: string | undefined

export function bundledFontPath(): string {
  if (fontPath) return fontPath
  try {
    fontPath = createRequire(import.meta.url).resolve(FONT_MODULE)
  } catch (err) {
    throw new TeitenError(
      'CONFIG_INVALID',
      `the report font ${FONT_MODULE} is not installed (npm ci)`,
      {},
      { cause: err },
    )
  }
  return fontPath
}

export function svgToPng(svg: string): { png: Buffer; width: number; height: number } {
  const resvg = new Resvg(svg, {
    background: '#ffffff',
    font: { fontFiles: [bundledFontPath()], loadSystemFonts: false, defaultFontFamily: PNG_FONT_FAMILY },
  })
  const image = resvg.render()
  return { png: image.asPng(), width: image.width, height: image.height }
}
