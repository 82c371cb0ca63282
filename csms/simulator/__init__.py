"""`csms simulate`: simulated OCPP 1.6J and 2.0.1 charge points for demos and load tests.

`--ocpp 2.0.1` (`SimulationConfig.ocpp`) makes every station an OCPP 2.0.1 one
(`station201.SimulatedStation201`: TransactionEvent instead of Start/StopTransaction and
MeterValues, RequestStart/StopTransaction, a device model); `--ocpp mixed` alternates 1.6 and
2.0.1 stations. What follows describes a 1.6 station; a 2.0.1 one does the same in 2.0.1's
messages.

Each simulated station is an `ocpp` library `ChargePoint` client over a `websockets`
connection. It boots, reports its connector Available, authorizes, starts a transaction on
connector 1, reports Charging, sends MeterValues every `meter_interval` seconds (energy register
in Wh and active power in W, context Sample.Periodic), a Heartbeat now and then, and when the run
ends stops the transaction (meterStop plus a small transactionData), reports Available and
closes. While it runs it answers the calls a central system sends it (RemoteStart/Stop, Reset,
ChangeAvailability, UnlockConnector, Get/ChangeConfiguration, TriggerMessage, ClearCache,
DataTransfer).

Latency is measured per call, from just before `ChargePoint.call()` to its return, so it
includes the library's own (synchronous) schema validation on this side. "msgs/s" counts the
frames the stations sent per second of the run (one MeterValues each second per station is one
msg/s per station); frames received are reported next to it.

One process of the `ocpp` client tops out near 1,900 msgs/s on one core: beyond that use
`--processes K` to split the stations across K worker processes (one per free core).

The core is `run_simulation(SimulationConfig) -> Summary`, usable in-process by tests and the
benchmark.
"""

from csms.simulator.cli import add_arguments, config_from_args, main, register, run_command
from csms.simulator.results import SimulationConfig, Summary
from csms.simulator.runner import run_simulation

__all__ = ["SimulationConfig", "Summary", "add_arguments", "config_from_args", "main",
           "register", "run_command", "run_simulation"]
