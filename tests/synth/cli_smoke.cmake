# Smoke test of `quantforge demo` and `quantforge generate` (run by ctest through cmake -P):
# exit codes, every row of the demo's table, and generate's refusal to overwrite.
# Inputs: -DQF=<quantforge binary> -DWORK=<scratch directory>.
execute_process(COMMAND ${QF} --threads 2 demo --rows 64 --cols 200 --seed 3
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "demo exited with ${rc}:\n${out}\n${err}")
endif()
foreach(row "generated tensor" "BF16 +rne" "NVFP4 +max " "NVFP4 +mse " "NVFP4 +mse fp8_scale_sweep"
            "NVFP4 +four_over_six" "MXFP4 +ocp_floor" "MXFP8 +ocp_floor" "FP8 +per_tensor"
            "FP8 +per_channel")
  if(NOT out MATCHES "${row}")
    message(FATAL_ERROR "demo output lacks '${row}':\n${out}")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${QF} generate --out ${WORK}/ckpt --preset tiny --arch nemotron-h
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT EXISTS ${WORK}/ckpt/config.json OR NOT EXISTS ${WORK}/ckpt/model.safetensors)
  message(FATAL_ERROR "generate exited with ${rc}:\n${out}\n${err}")
endif()
execute_process(COMMAND ${QF} generate --out ${WORK}/ckpt --preset tiny
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "exists")
  message(FATAL_ERROR "generate over an existing directory: exit ${rc}, stderr: ${err}")
endif()
file(REMOVE_RECURSE ${WORK})
