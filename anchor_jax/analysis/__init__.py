"""Reading what a run learned: anchor reports, the inspect figures, Figure 2 plots."""
