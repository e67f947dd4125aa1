import type { Scenario } from '../lib/types.js'

/** Every benchmark scenario, in the order the table shows them. Each engine adds its own module here. */
export const scenarios: Scenario[] = [
]
