"""MIMOSeg builder: medical segmentation datasets in, grounded instruction records out."""
