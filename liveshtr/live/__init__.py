"""Live engine: a bundle -> sound out, with no torch.

`runtime` runs the ONNX step, `generator` turns steps into audio hops, `engine` is the producer thread, the ring
and the audio callback, `sinks` are where the sound goes, `params` is the parameter table every control writes,
`automation` plays scheduled parameter changes, `safety` keeps the output finite and under its ceiling, `sched`
asks for real-time priority. It imports `sound` and `bundle`, never `training` and never `control`.
"""
