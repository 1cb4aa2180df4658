"""Built-in vidintel plugins: one module per provider or detector.

The registry (:mod:`vidintel_pipeline.plugin_api.registry`) loads every module in this folder and registers each
concrete plugin class it defines. To add a plugin, drop a module here (or in a folder named by
``VIDINTEL_PLUGIN_PATH``); see README "Writing a plugin".
"""
