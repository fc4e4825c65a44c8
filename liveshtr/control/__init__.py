"""Control surfaces: OSC, WebSocket, the browser page and MIDI, and telemetry back to them (no torch).

`commands` is what every surface may do, written once as plain logic; `osc_protocol` and `web_protocol` are its
two codecs and `midi_protocol` maps MIDI onto the parameter table, all testable without sockets or ports; `osc`,
`web` and `midi` are the thin servers and the input port around them (their threads, and the one that loads a
bundle during a set, are theirs); `web/` is the page; `access` decides who may connect; `telemetry` sends state
changes and meters to every surface; `surfaces` wires them all for `serve`. Control talks
to the live engine only through the parameter table (`live.params`) and the engine's public methods.
"""
