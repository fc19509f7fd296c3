SCALE_KEY = "scale"
