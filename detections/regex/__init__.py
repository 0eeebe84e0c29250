"""detections/regex"""
