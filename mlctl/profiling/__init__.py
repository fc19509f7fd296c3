"""`mlctl profile`: a bounded load through an endpoint (load), its figures (figures), the sizing it
implies (recommendation), and how they are shown (render, chart)."""
