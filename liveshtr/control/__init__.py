"""Control surfaces: OSC, WebSocket and the browser page, and telemetry back to them (no torch).

`osc_protocol` and `web_protocol` are plain logic over the parameter table, testable without sockets; `osc` and
`web` are the thin servers around them; `web/` is the page; `access` decides who may connect; `telemetry` sends
state changes and meters to every surface. Control talks to the live engine only through the parameter table
(`live.params`) and the engine's public methods.
"""
