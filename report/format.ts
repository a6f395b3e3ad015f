/** Number formatting shared by the report renderers. */

export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

export function pct(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`
}

/** A relative change as a signed percentage; `n/a` when there was nothing to compare with. */
export function changePct(x: number | null): string {
  if (x === null) return 'n/a'
  const s = (x * 100).toFixed(1)
  return x > 0 ? `+${s}%` : `${s}%`
}

export function num(x: number, digits = 2): string {
  return String(Number(x.toFixed(digits)))
}

/** For machine-read files: at most 6 decimals, no exponent, empty for "not defined". */
export function decimal(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return ''
  const s = x.toFixed(6).replace(/\.?0+$/, '')
  return s === '-0' ? '0' : s
}
