// The return type the components write, JSX.Element, as Preact's own.
import type { JSX as PreactJSX } from 'preact'

declare global {
  namespace JSX {
    type Element = PreactJSX.Element
  }
}
