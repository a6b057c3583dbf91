"""CSV point maps for non-SunSpec Modbus devices (the Rhombus RES-125 ships as `res125.csv`)."""
