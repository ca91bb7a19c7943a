/* outputs.c: placeholder until written (cwl.h). */
#include <stdio.h>
#include "cwl.h"
