import { useEffect, useRef } from 'preact/hooks'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

export interface Series { label: string, values: number[], color: string }

/** A live line chart (uPlot): x = seconds since the epoch, one line per series; resizes with its box. */
export function Chart (props: { title: string, times: number[], series: Series[], height?: number, unit?: string }): JSX.Element {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const key = props.series.map(s => s.label).join('|')
  useEffect(() => {
    const el = box.current
    if (el === null) return
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: props.height ?? 160,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: (_u, min, max) => [max - Math.min(15 * 60, Math.max(60, max - min)), max] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,.2)' }, ticks: { stroke: 'rgba(128,128,128,.3)' } },
        { stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,.2)' }, ticks: { stroke: 'rgba(128,128,128,.3)' }, size: 50 }
      ],
      series: [{ label: 'time' }, ...props.series.map(s => ({ label: s.label, stroke: s.color, width: 1.5, fill: s.color + '22', points: { show: false } }))]
    }
    const u = new uPlot(opts, [props.times, ...props.series.map(s => s.values)] as uPlot.AlignedData, el)
    plot.current = u
    const ro = new ResizeObserver(() => { u.setSize({ width: Math.max(200, el.clientWidth), height: props.height ?? 160 }) })
    ro.observe(el)
    return () => { ro.disconnect(); u.destroy(); plot.current = null }
  }, [key])
  useEffect(() => {
    plot.current?.setData([props.times, ...props.series.map(s => s.values)] as uPlot.AlignedData)
  }, [props.times, props.series])
  return <figure class="chart"><figcaption>{props.title}</figcaption><div ref={box} /></figure>
}
