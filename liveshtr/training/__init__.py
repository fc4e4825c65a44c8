"""Training: frames -> a fitted model -> a bundle (the only stage that imports torch).

`dataset` cuts songs into training streams, `model` is the PyTorch model and its exportable step, `fit` trains it,
`export` writes the versioned bundle with the ONNX step graph. It may import `sound`, `bundle` and `live` (to render
previews through the same generator the engine plays); nothing outside this package may import it on the serving
path.
"""
