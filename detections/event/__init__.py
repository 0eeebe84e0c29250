"""detections/event"""
