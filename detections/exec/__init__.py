"""detections/exec"""
