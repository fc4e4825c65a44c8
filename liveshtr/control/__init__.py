"""Control surfaces: OSC, WebSocket, the browser page and MIDI, and telemetry back to them (no torch).

`osc_protocol`, `web_protocol` and `midi_protocol` are plain logic over the parameter table, testable without
sockets or ports; `osc`, `web` and `midi` are the thin servers and the input port around them; `web/` is the
page; `access` decides who may connect; `telemetry` sends state changes and meters to every surface. Control talks
to the live engine only through the parameter table (`live.params`) and the engine's public methods.
"""
