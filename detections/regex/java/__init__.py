"""detections/regex/java"""
