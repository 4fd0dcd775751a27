"""`genforge serve`: the REST API and the web page (FastAPI + uvicorn; the `serve` extra).

    from genforge.serve.app import create_app
    from genforge.serve.config import ServeConfig
    from genforge.serve.registry import Registry

A face like `cli`: it calls the library (genforge.api, genforge.edit, genforge.detect) and is called
by nothing. Nothing is imported here, so `import genforge` never needs FastAPI.
"""
