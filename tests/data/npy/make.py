# Writes the .npy files the tests read, with real numpy (np.save), so the
# reader is tested against numpy's own output. Run: python make.py (numpy 2.x).
import numpy as np

sim_i2t = [[2.0, 1.0, 0.1], [0.5, 1.5, 0.8]]  # the article's logits
np.save("logits.npy", np.array(sim_i2t, dtype=np.float32))
np.save("targets.npy", np.array([0, 1], dtype=np.int64))
np.save("logits_f64_big_endian.npy", np.array(sim_i2t, dtype=">f8"))
np.save("logits_fortran.npy", np.asfortranarray(np.array(sim_i2t, dtype=np.float32)))
np.save("logits_f16.npy", np.array(sim_i2t, dtype=np.float16))
np.save("weight.npy", np.array([1.0, 2.0, 0.5], dtype=np.float32))
np.save("weight_f64.npy", np.array([1.0, 2.0, 0.5], dtype=np.float64))
np.save("targets_u8.npy", np.array([0, 1], dtype=np.uint8))
np.save("targets_i32.npy", np.array([0, 1], dtype=np.int32))
np.save("targets_0d.npy", np.array(1, dtype=np.int64))
np.save("logits_kdim.npy", np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 4)
np.save("targets_kdim.npy", np.array([[0, 2], [1, -100]], dtype=np.int64))
