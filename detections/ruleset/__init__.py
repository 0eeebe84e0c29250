"""detections/ruleset"""
