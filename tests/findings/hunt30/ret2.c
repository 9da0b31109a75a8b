#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
static void st(const char*tag){ FILE*f=fopen("/proc/self/status","r"); char l[256]; printf("[%s]",tag);
  while(fgets(l,sizeof l,f)) if(!strncmp(l,"VmLck",5)||!strncmp(l,"VmRSS",5)){ l[strlen(l)-1]=0; printf(" %s",l);} printf("\n"); fclose(f);}
int main(int argc,char**argv){ int mode=atoi(argv[1]); void* p[400];
  if(mode==1) { if(mlockall(MCL_CURRENT|MCL_FUTURE)) perror("mlockall"); }
  for(int i=0;i<400;i++){ size_t n=300000+(size_t)i*37000; p[i]=malloc(n); memset(p[i],1,n);} st("alloc");
  if(mode==2) { if(mlockall(MCL_CURRENT)) perror("mlockall"); st("locked"); }
  for(int i=0;i<400;i++) free(p[i]); st("freed");
  for(int s=0;s<6;s++){ usleep(500000); void* volatile x=malloc(300000); free(x); x=malloc(100); free(x);} st("idle 3s with calls");
  return 0;}
