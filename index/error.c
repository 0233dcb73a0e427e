/* error.c -- messages and names for the codes of PD_ERR_MAP. */
#include "paidan/error.h"

const char *pd_strerror(pd_err err) {
    switch (err) {
#define PD__ERR_MSG(name, code, msg) \
    case PD_ERR_##name:              \
        return msg;
        PD_ERR_MAP(PD__ERR_MSG)
#undef PD__ERR_MSG
        default:
            return "unknown error";
    }
}

const char *pd_err_name(pd_err err) {
    switch (err) {
#define PD__ERR_NAME(name, code, msg) \
    case PD_ERR_##name:               \
        return #name;
        PD_ERR_MAP(PD__ERR_NAME)
#undef PD__ERR_NAME
        default:
            return "UNKNOWN";
    }
}
