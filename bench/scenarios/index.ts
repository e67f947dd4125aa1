import type { Scenario } from '../lib/types.js'
import { authScenarios } from './auth.js'
import { clientScenarios } from './client.js'
import { authFileLoadScenario } from '../auth/load.js'
import { mqttScenarios } from './mqtt.js'
import { queueScenarios } from './queue.js'
import { storeScenarios } from './store.js'
import { streamScenarios } from './stream.js'

/** Every benchmark scenario, in the order the table shows them. Each engine adds its own module here. */
export const scenarios: Scenario[] = [
  ...mqttScenarios,
  ...queueScenarios,
  ...storeScenarios,
  ...streamScenarios,
  ...authScenarios,
  ...clientScenarios,
  authFileLoadScenario,
]
