"""detections/regex/lucene"""
