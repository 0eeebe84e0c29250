"""detections/regex/grok"""
