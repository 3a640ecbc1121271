"""The `autopilot` command for people: config, schedule preview, simulation, local serving.

Nothing here ships in the Lambda layer: it may use PyYAML, jsonschema and moto.
"""
